"""EventBridge for the embedded AWS: real-shaped EC2 spot events, delivered to the functions whose stack rules
match them (the same patterns the Pulumi program gives EventBridge), and the spot reclaim that follows a warning.

    with EmbeddedAws() as aws:
        delivery = interrupt(aws, "i-0123...")          # two-minute warning; EC2 takes the spot at the notice's end
                                                        # (on the embedded AWS's clock: asg_optimizer.local.clock)
        interrupt(aws, "i-0456...", rebalance=True)     # rebalance recommendation

EventBridge invokes its targets asynchronously; here the invocation is synchronous so the caller sees each
function's answer (the event and the function are the same).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asg_optimizer.local.capacity_rebalance import recommend
from asg_optimizer.local.embedded import EmbeddedAws
from stack.description import STACK, EventRule, Stack
from tasks.core.interruption import INTERRUPTION_WARNING, NOTICE_SECONDS, REBALANCE_RECOMMENDATION
from tasks.core.settings import SPOT_NOTICE_SECONDS

ACCOUNT = "123456789012"


def spot_event(instance_id: str, availability_zone: str, *, rebalance: bool = False,
               at: datetime | None = None) -> dict[str, Any]:
    """The event exactly as EC2 sends it (see tests/events/): one resource ARN, the instance in `detail`."""
    region = availability_zone[:-1]
    detail: dict[str, Any] = {"instance-id": instance_id}
    if not rebalance:
        detail["instance-action"] = "terminate"
    return {
        "version": "0", "id": str(uuid.uuid4()),
        "detail-type": REBALANCE_RECOMMENDATION if rebalance else INTERRUPTION_WARNING,
        "source": "aws.ec2", "account": ACCOUNT,
        "time": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region, "resources": [f"arn:aws:ec2:{availability_zone}:instance/{instance_id}"],
        "detail": detail,
    }


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge matching for the patterns the stack uses: a list matches any of its values, a dict matches
    field by field, recursively."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches(p, value[k]) for k, p in pattern.items())
    if isinstance(pattern, list):
        return value in pattern
    return bool(pattern == value)


def rules_for(event: dict[str, Any], stack: Stack = STACK) -> list[EventRule]:
    return [rule for rule in stack.rules if matches(rule.pattern, event)]


@dataclass
class Delivery:
    event: dict[str, Any]
    emitted_epoch: float  # on the embedded AWS's clock (`EmbeddedAws.epoch`), as the functions record times
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule key -> the function's answer


def emit(aws: EmbeddedAws, event: dict[str, Any]) -> Delivery:
    """Deliver one event to every matching rule's function; returns their answers."""
    delivery = Delivery(event, aws.epoch())
    lam = aws.client("lambda")
    for rule in rules_for(event):
        answer = lam.invoke(FunctionName=aws.deployment.function_arns[rule.function], Payload=json.dumps(event))
        delivery.results[rule.key] = json.loads(answer["Payload"].read() or b"{}")
    return delivery


def notice_seconds(aws: EmbeddedAws) -> float:
    return float(aws.environment.get(SPOT_NOTICE_SECONDS.name, NOTICE_SECONDS))


def warning_event(aws: EmbeddedAws, instance_id: str, availability_zone: str, *,
                  rebalance: bool = False) -> dict[str, Any]:
    """The spot's warning sent now on the embedded AWS's clock (the time its notice is counted from)."""
    return spot_event(instance_id, availability_zone, rebalance=rebalance, at=datetime.fromtimestamp(aws.epoch(), UTC))


def reclaim_at_notice_end(aws: EmbeddedAws, instance_id: str, delivery: Delivery) -> None:
    """EC2 takes the spot back when the notice of the warning delivered runs out, on the embedded AWS's clock
    (as the handlers' release deadline is): under a ManualClock only once the test moves the clock that far."""
    aws.ec2_model.reclaim(instance_id, delivery.emitted_epoch + notice_seconds(aws))


def interrupt(aws: EmbeddedAws, instance_id: str, *, rebalance: bool = False, reclaim: bool = True) -> Delivery:
    """Emit the interruption warning (or rebalance recommendation) for a spot; after a warning EC2 reclaims the
    instance when the notice runs out, unless `reclaim=False`."""
    reservations = aws.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    zone = reservations[0]["Instances"][0]["Placement"]["AvailabilityZone"]
    delivery = emit(aws, warning_event(aws, instance_id, zone, rebalance=rebalance))
    if rebalance:  # Auto Scaling's own Capacity Rebalancing acts on the same recommendation (launching takes longer)
        aws.rebalanced[instance_id] = recommend(aws.lifecycle, ACCOUNT, aws.region, instance_id)
    if reclaim and not rebalance:
        reclaim_at_notice_end(aws, instance_id, delivery)
    return delivery


@dataclass
class InterruptionRun:
    """One interruption, end to end: what the demo prints."""

    spot_instance_id: str
    status: str
    requested_after_seconds: float  # warning emitted -> desired raised (replacement requested)
    lowest_in_service: int
    desired: int
    violations: list[str]


def run_interruption(aws: EmbeddedAws, asg_name: str, timeout: float = 60.0) -> InterruptionRun:
    """Interrupt one spot of the group and follow the fallback to its end, sampling the group after every step."""
    from asg_optimizer.local.invariants import InvariantChecker
    from stack.description import INTERRUPTION

    raw = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])
    group = raw["AutoScalingGroups"][0]
    ids = [i["InstanceId"] for i in group["Instances"]]
    reservations = aws.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    spot = next(i["InstanceId"] for r in reservations for i in r["Instances"] if i.get("InstanceLifecycle") == "spot")
    with InvariantChecker([asg_name]) as check:
        delivery = interrupt(aws, spot)
        name = delivery.results["spot-interruption"]["execution_name"]
        arn = aws.deployment.state_machine_arns[INTERRUPTION].replace(":stateMachine:", ":execution:") + f":{name}"
        described = aws.wait(arn, timeout=timeout)
    violations = check.finish()
    output = json.loads(described.get("output") or "{}")
    return InterruptionRun(
        spot, described["status"], round(float(output.get("requested_at", 0)) - delivery.emitted_epoch, 3),
        check.lowest_in_service(asg_name), group["DesiredCapacity"], violations,
    )
