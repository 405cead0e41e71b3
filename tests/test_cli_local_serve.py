"""`asg-optimizer local serve` in a process of its own, used from this one the way a user's tools would use it:
plain boto3 with an endpoint URL (no moto here), and this CLI pointed at it with --endpoint-url."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tasks.core.naming import execution_name
from tests.cli_helpers import FAST_TIMING, cli, flat
from tests.conftest import FAST

ROOT = Path(__file__).resolve().parent.parent
# Each module fixture starts a server process; the module runs early so no worker is left with it at the end.
pytestmark = pytest.mark.long


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    def __init__(self, process: subprocess.Popen[str], endpoint: str) -> None:
        self.process, self.endpoint = process, endpoint
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed in {timeout}s; output so far:\n" + "\n".join(self.seen))

    def client(self, service: str) -> Any:
        """What any boto3 script would do: an endpoint and any credentials."""
        session = boto3.session.Session(aws_access_key_id="any", aws_secret_access_key="any", region_name="us-east-1")
        return session.client(service, endpoint_url=self.endpoint)


@contextmanager
def serve(*options: str, regions: tuple[str, ...] = ()) -> Iterator[Served]:
    """`asg-optimizer local serve` on a free port in a process of its own, until SIGTERM (which must stop it);
    `regions`: the global --region, once per region."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    process = subprocess.Popen(
        [sys.executable, "-c", "from asg_optimizer.cli import app; app()", *(f"--region={r}" for r in regions),
         "local", "serve", "--port", str(port), *options],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    server = Served(process, f"http://127.0.0.1:{port}")
    try:
        server.wait_for("ready", timeout=90)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=60) == 0  # SIGTERM stops it cleanly
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve("--demo-fleet", "--boot-delay", "0.5", "--spot-notice", "2") as server:
        yield server


def test_serve_prints_how_to_use_it(served: Served) -> None:
    printed = "\n".join(served.seen)
    assert f"asg-optimizer local AWS on {served.endpoint} (region us-east-1), stack deployed:" in printed
    assert "state machine  arn:aws:states:us-east-1:123456789012:stateMachine:asg-optimizer-replace-instance" in printed
    assert "demo fleet     web (3 on-demand), workers (2 on-demand), legacy-db (2 on-demand, not opted in)" in printed
    assert f"asg-optimizer --endpoint-url {served.endpoint} status" in printed


def test_plain_boto3_sees_the_stack_and_runs_a_replacement_end_to_end(served: Served) -> None:
    sfn = served.client("stepfunctions")
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    assert "asg-optimizer-replace-instance" in machines
    functions = {f["FunctionName"] for f in served.client("lambda").list_functions()["Functions"]}
    assert {"asg-optimizer-validate", "asg-optimizer-scanner", "asg-optimizer-sweep"} <= functions
    products = served.client("pricing").get_products(ServiceCode="AmazonEC2", Filters=[
        {"Type": "TERM_MATCH", "Field": k, "Value": v}
        for k, v in {"instanceType": "m5.large", "regionCode": "us-east-1", "operatingSystem": "Linux"}.items()])
    assert len(products["PriceList"]) == 1  # moto has none: the server answers from the bundled snapshot

    group = served.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["workers"])[
        "AutoScalingGroups"][0]
    on_demand = group["Instances"][0]["InstanceId"]
    arn = sfn.start_execution(
        stateMachineArn=machines["asg-optimizer-replace-instance"],
        name=execution_name("workers", on_demand, datetime.now(UTC)),
        input=json.dumps({"asg_name": "workers", "instance_id": on_demand, "reason": "manual", "timing": FAST}),
    )["executionArn"]
    deadline = time.monotonic() + 90
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the replacement did not end in 90 s"
        time.sleep(0.3)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    spot = json.loads(described["output"])["spot"]["spot_instance_id"]

    ec2 = served.client("ec2")
    states = {i["InstanceId"]: (i["State"]["Name"], i.get("InstanceLifecycle", "on-demand"))
              for r in ec2.describe_instances(InstanceIds=[on_demand, spot])["Reservations"] for i in r["Instances"]}
    assert states == {on_demand: ("terminated", "on-demand"), spot: ("running", "spot")}
    after = served.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["workers"])[
        "AutoScalingGroups"][0]
    assert spot in {i["InstanceId"] for i in after["Instances"]} and after["MaxSize"] == group["MaxSize"]


def test_this_cli_pointed_at_it(served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)  # no credentials, no region: a local endpoint needs neither
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    result = cli("--endpoint-url", served.endpoint, "-o", "json", "status")
    assert result.exit_code == 0, result.output
    groups = {g["asg_name"]: g for g in json.loads(result.stdout)["groups"]}
    assert sorted(groups) == ["web", "workers"]  # legacy-db is not opted in
    assert groups["web"]["on_demand"] == 3 and groups["web"]["hourly_cost"] > 0

    monkeypatch.setenv("AWS_ENDPOINT_URL", served.endpoint)  # the standard variable works as well
    plan = cli("-o", "json", "plan", "--asg", "web")
    assert plan.exit_code == 0, plan.output
    assert {v["action"] for v in json.loads(plan.stdout)["plan"]} == {"replace"}  # MaxParallel 3: all three


def test_replace_through_it_then_interrupt_the_spot(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", served.endpoint)
    swapped = cli("replace", "--asg", "web", "--wait", *FAST_TIMING)
    assert swapped.exit_code == 0, swapped.output
    spot = re.search(r"replaced by spot (i-[0-9a-f]+)", flat(swapped.stdout)).group(1)  # type: ignore[union-attr]

    interrupted = cli("local", "interrupt", spot)  # not a terminal: one line per state of the fallback (item 9)
    assert interrupted.exit_code == 0, interrupted.output
    lines = interrupted.stdout.splitlines()
    warned, answer = lines[0].split(": ", 1)
    assert warned == f"EC2 Spot Instance Interruption Warning for {spot} -> asg-optimizer-spot-interruption"
    assert json.loads(answer)["started"] is True
    fallback = json.loads(answer)["execution_name"]
    assert lines[1] == f"EC2 takes {spot} back in 2s (Ctrl-C leaves it running)"
    assert lines[2] == f"Following the fallback {fallback} (asg-optimizer show {fallback}: its timeline)"
    shown = json.loads(cli("-o", "json", "show", fallback).stdout)
    entered = [s["state"] + (f" (visit {s['visit']})" if s["visit"] > 1 else "") for s in shown["steps"]]
    progress = [line for line in lines if line.startswith("  +")]
    assert [line.split(" ", 3)[-1] for line in progress] == entered  # each state once, in order, none missed
    assert lines[3:3 + len(progress)] == progress
    assert lines[3 + len(progress)] == f"{fallback}: SUCCEEDED (replaced)"  # how the fallback ended
    ended = flat("\n".join(lines[4 + len(progress):-1]))
    assert ended.startswith("Path: RaiseCapacity → Raised") and "Fallback done in " in ended, ended
    assert f"spot {spot} warned, on-demand capacity in" in ended
    assert re.fullmatch(rf"{spot} reclaimed after [\d.]+s", lines[-1])
    ec2 = served.client("ec2")
    state = ec2.describe_instances(InstanceIds=[spot])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")

    on_demand = served.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["legacy-db"])[
        "AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    refused = cli("local", "interrupt", on_demand)
    assert (refused.exit_code, refused.stderr) == (
        2, f"error: instance {on_demand} is on-demand: only spot instances get interruption warnings\n")


def test_interrupt_help_documents_reclaim_and_its_default_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    shown = flat(cli("local", "interrupt", "--help").stdout.replace("│", " "))  # the help's box, undone
    assert "--reclaim --no-reclaim" in shown and "[default: reclaim]" in shown
    assert "(120 s unless `local serve --spot-notice` set another)" in shown
    assert "--follow --no-follow" in shown and "one line per state when not on a terminal" in shown


def test_scan_every_runs_the_deployed_scanner() -> None:
    with serve("--demo-fleet", "--scan-every", "1") as server:
        started = server.wait_for("scan started ", timeout=60)
    assert re.fullmatch(r"scan started (web|workers)-i-[0-9a-f]+-\d{8}T\d{6}", started)
    assert "  scanner        every 1s" in server.seen


def test_the_port_opens_only_once_the_stack_is_deployed() -> None:
    """A client that connects the moment the port accepts finds the state machine (item 12)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    process = subprocess.Popen(
        [sys.executable, "-c", "from asg_optimizer.cli import app; app()", "local", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert time.monotonic() < deadline and process.poll() is None, "the port never opened"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        served = Served.__new__(Served)
        served.endpoint = f"http://127.0.0.1:{port}"
        names = [m["name"] for m in served.client("stepfunctions").list_state_machines()["stateMachines"]]
        assert "asg-optimizer-replace-instance" in names
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_served_groups_spread_their_instances_over_zones(served: Served) -> None:
    group = served.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])[
        "AutoScalingGroups"][0]
    zones = [i["AvailabilityZone"] for i in group["Instances"]]
    assert len(zones) == 3 and len(set(zones)) >= 2, zones  # 3 instances over the group's zones, not all in one


def test_errors_against_local_serve_point_the_right_way(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    misspelt = cli("--endpoint-url", served.endpoint, "--region", "eu-wset-1", "status")
    assert (misspelt.exit_code, misspelt.stderr) == (
        2, "error: --region 'eu-wset-1' is not an AWS region: did you mean eu-west-1?\n")
    port = served.endpoint.rsplit(":", 1)[1]
    schemeless = cli("--endpoint-url", f"127.0.0.1:{port}", "status")
    assert (schemeless.exit_code, schemeless.stderr) == (
        2, f"error: --endpoint-url '127.0.0.1:{port}' is not a URL: give the scheme and host, e.g. "
           f"http://127.0.0.1:{port}\n")
    listed = cli("--endpoint-url", served.endpoint, "executions", "--limit", "1")
    assert listed.exit_code == 0, listed.output
    data = cli("--endpoint-url", served.endpoint, "-o", "json", "executions", "--limit", "1")
    assert all(r["console_url"] is None for r in json.loads(data.stdout)["executions"])  # no console locally


def test_plain_boto3_buys_an_ri_and_a_savings_plan_against_local_serve(served: Served) -> None:
    """moto has neither: the server's models answer, as AWS would, to any boto3 script."""
    ec2, sp = served.client("ec2"), served.client("savingsplans")
    offering = ec2.describe_reserved_instances_offerings(
        InstanceType="m5.large", AvailabilityZone="us-east-1a", OfferingType="No Upfront", OfferingClass="standard",
        MaxDuration=31536000, Filters=[{"Name": "scope", "Values": ["Availability Zone"]}])[
        "ReservedInstancesOfferings"][0]
    offering_id = offering["ReservedInstancesOfferingId"]
    ri_id = ec2.purchase_reserved_instances_offering(ReservedInstancesOfferingId=offering_id,
                                                     InstanceCount=1)["ReservedInstancesId"]
    assert [r["ReservedInstancesId"] for r in ec2.describe_reserved_instances(
        Filters=[{"Name": "state", "Values": ["active"]}])["ReservedInstances"]] == [ri_id]
    compute = sp.describe_savings_plans_offerings(planTypes=["Compute"], paymentOptions=["No Upfront"],
                                                  durations=[31536000])["searchResults"][0]["offeringId"]
    plan_id = sp.create_savings_plan(savingsPlanOfferingId=compute, commitment="0.25")["savingsPlanId"]
    assert [p["savingsPlanId"] for p in sp.describe_savings_plans(states=["active"])["savingsPlans"]] == [plan_id]
    rates = sp.describe_savings_plan_rates(savingsPlanId=plan_id, filters=[
        {"name": "instanceType", "values": ["m5.large"]}])["searchResults"]
    assert [(r["usageType"], r["rate"]) for r in rates] == [("BoxUsage:m5.large", "0.070080")]
    with pytest.raises(ClientError) as refused:
        sp.create_savings_plan(savingsPlanOfferingId="nope", commitment="1")
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
