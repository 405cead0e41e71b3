"""Every refusal of the CLI: one exact line on stderr, exit code 2, and AWS exactly as it was.

One embedded AWS for the whole module (refusals change nothing, and `refused` proves it each time); the few tests
that set something up first do it in groups of their own.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asg_optimizer.aws_session import NO_CREDENTIALS
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import IMAGE_ID, GroupSpec, create_group, create_network
from tests.cli_helpers import cli, snapshot
from tests.conftest import FAST, WAIT_SCALE
from tests.workflow_helpers import group, states_entered, validate_held

NO_MACHINE = ("error: no deployed state machine {name} in us-east-1: deploy the stack (`pulumi up`, see README), "
              "pass --region or --prefix to find yours, or point at one with --state-machine-arn")


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with EmbeddedAws(boot_delay_seconds=0.2, retry_scale=0.05, wait_scale=WAIT_SCALE) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def fleet(aws: EmbeddedAws) -> dict[str, Any]:
    network = create_network()
    web = create_group(network, GroupSpec("web", desired=2, max_size=4))
    legacy = create_group(network, GroupSpec("legacy", desired=1, max_size=2, opted_in=False))
    return {"web": [i["InstanceId"] for i in web["Instances"]], "legacy": legacy["Instances"][0]["InstanceId"]}


def refused(aws: EmbeddedAws, *args: str) -> str:
    """Run a command that must be refused; return its stderr after checking nothing changed."""
    before = snapshot(aws)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert snapshot(aws) == before
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_asg(aws: EmbeddedAws, fleet) -> None:
    assert refused(aws, "replace", "--asg", "nope") == "error: ASG nope does not exist in us-east-1"
    assert refused(aws, "plan", "--asg", "nope") == "error: ASG nope does not exist in us-east-1"
    assert refused(aws, "executions", "--asg", "nope") == (
        "error: ASG nope does not exist in us-east-1 and no execution of it matches")


def test_group_not_opted_in_is_refused_without_force(aws: EmbeddedAws, fleet) -> None:
    assert refused(aws, "replace", "--asg", "legacy", "--wait") == (
        "error: ASG legacy is not opted in: tag AsgOptimiser is missing, expected 'true'")
    # --force waives only the window and the floor: the deployed IAM changes opted-in groups only
    assert refused(aws, "replace", "--asg", "legacy", "--force") == (
        "error: ASG legacy is not opted in: tag AsgOptimiser is missing, expected 'true'")


def test_instance_not_in_that_group(aws: EmbeddedAws, fleet) -> None:
    legacy = fleet["legacy"]
    assert refused(aws, "replace", "--asg", "web", "--instance", legacy) == (
        f"error: instance {legacy} is not a member of ASG web")
    assert refused(aws, "replace", "--asg", "web", "--instance", "i-0123456789abcdef0") == (
        "error: instance i-0123456789abcdef0 is not a member of ASG web")


def test_instance_not_on_demand(aws: EmbeddedAws, make_group) -> None:
    make_group("mixed", desired=1, max_size=3)
    ec2, first = aws.client("ec2"), group(aws, "mixed")["Instances"][0]
    subnet = ec2.describe_instances(InstanceIds=[first["InstanceId"]])["Reservations"][0]["Instances"][0]["SubnetId"]
    spot = ec2.run_instances(ImageId=IMAGE_ID, InstanceType="m5.large", MinCount=1, MaxCount=1, SubnetId=subnet,
                             InstanceMarketOptions={"MarketType": "spot"})["Instances"][0]["InstanceId"]
    aws.client("autoscaling").attach_instances(AutoScalingGroupName="mixed", InstanceIds=[spot])
    assert refused(aws, "replace", "--asg", "mixed", "--instance", spot) == (
        f"error: instance {spot} is spot, not on-demand")


def test_instance_already_being_replaced(aws: EmbeddedAws, make_group) -> None:
    target = make_group("busy", desired=1, max_size=2)["Instances"][0]["InstanceId"]
    with validate_held(target):  # RUNNING until the CLI has refused, however slow the machine
        arn = aws.start_swap("busy", target, timing=FAST)
        assert refused(aws, "replace", "--asg", "busy", "--instance", target) == (
            f"error: instance {target} is already being replaced by execution {arn.rsplit(':', 1)[-1]}")
    assert aws.wait(arn)["status"] == "SUCCEEDED"
    assert states_entered(aws, arn)[-1] == "Swapped"  # the one swap the CLI stood aside for


def test_group_with_nothing_left_to_replace(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("solo", desired=1, max_size=2)
    only = raw["Instances"][0]["InstanceId"]
    aws.client("autoscaling").set_instance_protection(AutoScalingGroupName="solo", InstanceIds=[only],
                                                      ProtectedFromScaleIn=True)
    assert refused(aws, "replace", "--asg", "solo") == (
        f"error: ASG solo has no on-demand instance to replace: instance {only} in ASG solo is protected from scale-in")


def test_no_deployed_state_machine(aws: EmbeddedAws, fleet) -> None:
    for command in (["status"], ["replace", "--asg", "web"], ["executions"], ["show", "x"]):
        assert refused(aws, "--prefix", "other", *command) == NO_MACHINE.format(name="other-replace-instance")
    bogus = "arn:aws:states:us-east-1:123456789012:stateMachine:gone"
    assert refused(aws, "--state-machine-arn", bogus, "replace", "--asg", "web") == (
        f"error: state machine {bogus} does not exist (StateMachineDoesNotExist)")
    assert refused(aws, "--prefix", "other", "plan") == (
        "error: no deployed function other-scanner in us-east-1: deploy the stack (`pulumi up`, see README), or pass "
        "--region or --prefix to find yours")
    assert refused(aws, "--prefix", "other", "sweep") == (
        "error: no deployed function other-sweep in us-east-1: deploy the stack (`pulumi up`, see README), or pass "
        "--region or --prefix to find yours")


def without_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_no_credentials_points_at_local_serve(aws: EmbeddedAws, fleet, monkeypatch, tmp_path) -> None:
    assert NO_CREDENTIALS.endswith("run `asg-optimizer local serve` and add --endpoint-url http://127.0.0.1:4566")
    before = snapshot(aws)
    with monkeypatch.context() as patched:
        without_credentials(patched, tmp_path)
        for command in (["status"], ["replace", "--asg", "web", "--wait"], ["plan"], ["show", "x"], ["sweep"]):
            result = cli(*command)
            assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"error: {NO_CREDENTIALS}\n")
    assert snapshot(aws) == before


def test_a_local_endpoint_needs_no_credentials_and_says_when_nothing_listens(monkeypatch, tmp_path) -> None:
    without_credentials(monkeypatch, tmp_path)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("--endpoint-url", f"http://127.0.0.1:{port}", "status")
    assert result.exit_code == 2
    assert result.stderr == (f'error: cannot reach AWS: Could not connect to the endpoint URL: "http://127.0.0.1:{port}/"'
                             " (is `asg-optimizer local serve` running?)\n")


def test_bad_options_name_the_value(aws: EmbeddedAws, fleet) -> None:
    assert refused(aws, "replace", "--asg", "web", "--timing", "boot_max_polls=0") == (
        "error: timing.boot_max_polls must be an integer from 1 to 200, got 0")
    assert refused(aws, "replace", "--asg", "web", "--timing", "boot_polls=3") == (
        "error: unknown timing key 'boot_polls'; known keys: boot_max_polls, boot_poll_seconds, group_max_polls, "
        "group_poll_seconds, lb_max_polls, lb_poll_seconds, start_delay_seconds")
    assert refused(aws, "replace", "--asg", "web", "--timing", "fast") == (
        "error: --timing 'fast' is not KEY=WHOLE_NUMBER, e.g. boot_poll_seconds=5")
    assert refused(aws, "executions", "--since", "yesterday") == (
        "error: --since 'yesterday' is not a duration such as 30m, 2h, 1d or 1h30m")
    assert refused(aws, "executions", "--status", "done") == (
        "error: --status 'done' is not one of RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE")
    missing = "web-i-0123456789abcdef0-20260101T000000"
    assert refused(aws, "show", missing) == (
        f"error: execution {missing} not found (looked for arn:aws:states:us-east-1:123456789012:execution:"
        f"asg-optimizer-replace-instance:{missing} and among the interruption fallbacks)")


def test_local_serve_on_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("local", "serve", "--port", str(port))
    assert result.exit_code == 2
    assert result.stderr == f"error: port {port} on 127.0.0.1 is in use: pick another with --port\n"


def test_local_interrupt_refuses_anything_but_a_local_endpoint(aws: EmbeddedAws, fleet) -> None:
    assert refused(aws, "local", "interrupt", fleet["web"][0]) == (
        "error: local interrupt fakes an EC2 event and terminates the instance, so it only talks to `asg-optimizer "
        "local serve`: pass --endpoint-url http://127.0.0.1:4566 (or set AWS_ENDPOINT_URL)")
