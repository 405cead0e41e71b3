"""Cleanup (failure path): find the spots this execution launched by tag and roll back; never touch the
on-demand instance. Safe to run any number of times."""

from __future__ import annotations

from typing import Any

from tasks.aws.clients import client
from tasks.aws.groups import describe_group
from tasks.aws.instances import LIVE_STATES, describe_instance, describe_instances
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.swap_events import publish
from tasks.core.cleanup import plan_cleanup
from tasks.core.errors import GroupNotFound, SpotNotVisibleYet
from tasks.core.model import Group
from tasks.core.steps import CleanupInput, CleanupResult
from tasks.core.swap_events import SWAP_FAILED, swap_detail
from tasks.core.tags import EXECUTION


@logged_metered_retryable
def handler(event: CleanupInput, context: Any) -> CleanupResult:
    asg_name, execution = event["asg_name"], event["execution_name"]
    spots = describe_instances(
        filters=[
            {"Name": f"tag:{EXECUTION}", "Values": [execution]},
            {"Name": "instance-state-name", "Values": LIVE_STATES},
        ]
    )
    # A tag search can miss a spot launched a moment ago (EC2 is eventually consistent); the one LaunchSpot
    # reported is looked up by id too. Not visible yet: retried (SpotNotVisibleYet), never forgotten.
    launch = event.get("spot")
    known = launch.get("spot_instance_id") if launch else None
    if known and known not in {s.instance_id for s in spots}:
        found = describe_instance(known)
        if found is None:
            raise SpotNotVisibleYet(f"spot {known} launched by {execution} is not visible in EC2 yet")
        if found.state in LIVE_STATES:
            spots.append(found)
    try:
        group: Group | None = describe_group(asg_name)
    except GroupNotFound:
        group = None
    on_demand_member = bool(group and group.member(event["instance_id"]))
    terminated, kept = [], []
    for spot in spots:
        member = group.member(spot.instance_id) if group else None
        plan = plan_cleanup(
            spot_running=True, spot_member_state=member.lifecycle_state if member else None,
            on_demand_member=on_demand_member,
        )
        if plan.remove_spot:  # out through the group, so desired comes back down with it
            client("autoscaling").terminate_instance_in_auto_scaling_group(
                InstanceId=spot.instance_id, ShouldDecrementDesiredCapacity=True
            )
            terminated.append(spot.instance_id)
        elif plan.terminate_spot:
            client("ec2").terminate_instances(InstanceIds=[spot.instance_id])
            terminated.append(spot.instance_id)
        if plan.keep_spot:
            kept.append(spot.instance_id)
    logger.info("cleaned up", extra={"asg": asg_name, "terminated": terminated, "kept": kept})
    error = event.get("error")
    publish(SWAP_FAILED, swap_detail(event, error=error.get("Error") if error else None,
                                     why=error.get("Cause") if error else None,
                                     terminated_spots=terminated, kept_spots=kept))
    return {"terminated_spots": ",".join(terminated), "kept_spots": ",".join(kept)}
