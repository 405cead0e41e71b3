"""The demo's commitments part: a group partly covered by a zonal RI keeps its covered on-demand, and once a second
RI is bought mid-demo (and has sat idle past the hysteresis), one spot is swapped back to on-demand.

Scans are the deployed scanner's, invoked through Lambda with `now` moved forward, so the 15-minute idle rule is
really applied without the demo waiting 15 minutes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import GroupSpec, Network, create_group
from asg_optimizer.local.invariants import InvariantChecker
from stack.description import STACK
from tasks.aws import commitments
from tasks.core.commitments import hourly_cost

COVERED = GroupSpec("batch", desired=2, max_size=4, instance_type="m5.large", zones=("a",), extra_tags={
    "AsgOptimiser:MaxParallel": "2", "AsgOptimiser:AllowedTypes": "m5.large", "AsgOptimiser:GracePeriod": "0"})
ZONE = "us-east-1a"


@dataclass
class CommitmentsRun:
    lines: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # on-demand instances kept because an RI pays for them
    swapped_back: str = ""  # the execution that swapped a spot back to on-demand
    status: str = ""  # its final status
    started_after_swap_back: int = 0  # executions the scan after it started (0: no flapping)
    list_hourly_cost: float = 0.0  # every on-demand instance of the region at list price, at the end
    commitment_aware_hourly_cost: float = 0.0  # the same with covered on-demand at $0 marginal
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (bool(self.kept) and self.status == "SUCCEEDED" and self.started_after_swap_back == 0
                and not self.violations)


def buy_ri(aws: EmbeddedAws, instance_type: str, zone: str) -> str:
    ec2 = aws.client("ec2")
    offering = ec2.describe_reserved_instances_offerings(
        InstanceType=instance_type, AvailabilityZone=zone, OfferingType="No Upfront", OfferingClass="standard",
        MaxDuration=31536000, Filters=[{"Name": "scope", "Values": ["Availability Zone"]}],
    )["ReservedInstancesOfferings"][0]
    bought = ec2.purchase_reserved_instances_offering(
        ReservedInstancesOfferingId=offering["ReservedInstancesOfferingId"], InstanceCount=1)
    commitments.reset_cache()  # a warm scanner would see the purchase within its 5-minute cache
    return str(bought["ReservedInstancesId"])


def _scan(aws: EmbeddedAws, timing: dict[str, int], at: datetime) -> dict[str, Any]:
    response = aws.client("lambda").invoke(FunctionName=STACK.function("scanner").name(), Payload=json.dumps(
        {"asg_names": [COVERED.name], "timing": timing, "now": at.isoformat()}))
    result: dict[str, Any] = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise RuntimeError(f"scanner failed: {result.get('errorType')}: {result.get('errorMessage')}")
    return result


def _wait_all(aws: EmbeddedAws, names: list[str]) -> dict[str, str]:
    prefix = aws.deployment.replace_arn.replace(":stateMachine:", ":execution:")
    return {name: aws.wait(f"{prefix}:{name}", timeout=300)["status"] for name in names}


def run_commitments(aws: EmbeddedAws, network: Network, timing: dict[str, int]) -> CommitmentsRun:
    run = CommitmentsRun()
    create_group(network, COVERED)
    first = buy_ri(aws, COVERED.instance_type, ZONE)
    run.lines.append(f"bought RI {first[:8]}…: 1 x {COVERED.instance_type} in {ZONE} (zonal); group {COVERED.name} "
                     f"runs {COVERED.desired} x {COVERED.instance_type} on-demand there")
    t0 = datetime.now(UTC)
    with InvariantChecker([COVERED.name], watch_spots=True) as watch:
        scan = _scan(aws, timing, t0)
        for line in scan["plan"]:
            run.lines.append(f"scan: {line['asg_name']} {line['instance_id']}: {line['action']} — {line['why']}")
            if line["why"].startswith("kept on-demand"):
                run.kept.append(line["instance_id"])
        _wait_all(aws, scan["started"])
        second = buy_ri(aws, COVERED.instance_type, ZONE)
        run.lines.append(f"bought RI {second[:8]}… mid-demo: 1 x {COVERED.instance_type} in {ZONE}, idle (its "
                         f"instance is spot now)")
        waits = _scan(aws, timing, t0 + timedelta(minutes=1))
        run.lines += [f"scan (+1 min): {w['instance_id']}: {w['why']}" for w in waits["plan"]
                      if w["why"].startswith("stays spot")]
        back = _scan(aws, timing, t0 + timedelta(minutes=17))
        run.lines += [f"scan (+17 min): {b['instance_id']}: {b['action']} — {b['why']}" for b in back["plan"]
                      if b["action"] == "to-on-demand"]
        for name, status in _wait_all(aws, back["started"]).items():
            run.swapped_back, run.status = name, status
            run.lines.append(f"swap back {name}: {status}")
        after = _scan(aws, timing, t0 + timedelta(minutes=22))
        run.started_after_swap_back = len(after["started"])
        run.lines.append(f"scan (+22 min): {len(after['started'])} started, idle commitment "
                         f"${after['idle_commitment_per_hour']:.4f}/h; " + "; ".join(
                             f"{a['instance_id']}: {a['why']}" for a in after["plan"]))
        run.violations = watch.finish()
    fleet = commitments.fleet_coverage([])
    if fleet is not None:
        ids = list(fleet.coverage.instances)
        run.list_hourly_cost = round(sum(fleet.coverage.instances[i].usage.on_demand_price for i in ids), 4)
        run.commitment_aware_hourly_cost = hourly_cost(fleet.coverage, ids)
    run.lines.append(f"on-demand in the region: ${run.list_hourly_cost:.4f}/h at list price, "
                     f"${run.commitment_aware_hourly_cost:.4f}/h commitment-aware (covered on-demand at $0)")
    return run
