"""RaiseCapacity (spot interruption, first step): one more instance for the group right now, launched by the
group from its own on-demand template, while the doomed spot still serves. One section under the group's lease
(tasks.core.coordination): desired + 1 (and MaxSize + 1 only if full) in one call — the replacement is
requested here — then AZRebalance suspended; the record keeps what we added, so N warnings raise desired by
exactly N. Then the spot's pool goes on cooldown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.aws import clock
from tasks.aws.coordination import begin_section, cool_pools
from tasks.aws.group_writes import apply_take
from tasks.aws.groups import describe_group
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.load_balancers import longest_drain_seconds
from tasks.core.coordination import after_take, plan_take
from tasks.core.interruption import NOTICE_SECONDS, poll_seconds, raise_refusal, release_deadline
from tasks.core.prices import Pool
from tasks.core.steps import InterruptionState, RaiseCapacityInput, RaiseCapacityResult


@logged_metered_retryable
def handler(event: RaiseCapacityInput, context: Any) -> RaiseCapacityResult:
    data, execution = event["input"], event["execution_name"]
    asg_name, spot_id = data["asg_name"], data["instance_id"]
    notice = int(data.get("notice_seconds", NOTICE_SECONDS))
    warned_at = datetime.fromisoformat(data["warned_at"].replace("Z", "+00:00")).timestamp()
    logger.append_keys(asg=asg_name, spot_instance_id=spot_id, execution=execution)
    group = describe_group(asg_name)
    drain = longest_drain_seconds(group) if group.behind_load_balancer else 0
    out: InterruptionState = {
        "asg_name": asg_name, "instance_id": spot_id, "execution_name": execution, "drain_seconds": drain,
        "deadline": release_deadline(warned_at, notice, drain_seconds=drain), "poll_seconds": poll_seconds(notice)}
    refusal = raise_refusal(group, spot_id)
    if refusal:
        logger.info("nothing to replace", extra={"why": refusal})
        return {**out, "raised": False, "raised_to": 0, "why": refusal}
    section = begin_section(asg_name, execution, group, lambda g: plan_take(g, raise_desired=True))
    assert section.take is not None
    apply_take(asg_name, section.take)
    requested_at = clock.now()
    raised_to = section.take.hold.planned_desired or section.group.desired
    section.release(after_take(section.found, execution, section.take, section.group, desired_after=raised_to))
    spot = section.group.member(spot_id) or group.member(spot_id)
    assert spot is not None
    cool_pools([Pool(spot.instance_type, spot.availability_zone)], reason="interruption", source=execution)
    logger.info("replacement requested", extra={"desired": raised_to, "after_warning": requested_at - warned_at})
    return {**out, "raised": True, "raised_to": raised_to, "requested_at": requested_at,
            "why": f"desired raised to {raised_to}"}
