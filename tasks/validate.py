"""Validate: refuse the swap unless the instance is an on-demand, InService, unprotected member of an
opted-in ASG with a well-formed policy, that no other execution is replacing, within the group's window and
above its on-demand floor (an operator's `replace --force` waives only the window and the floor). Changes
nothing; returns the facts later steps need. A refusal ends the execution as outcome `refused`, not FAILED."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws.clients import aws_handler
from tasks.aws.executions import running_swaps
from tasks.aws.groups import describe_group_raw, group_from_response, lifecycle_hooks, propagated_tags
from tasks.aws.instances import instances_by_id
from tasks.core.eligibility import (
    FLOOR_AND_WINDOW_REASONS,
    check_floor_and_window,
    check_not_in_flight,
    check_reason,
    check_swappable,
    policy_of,
)
from tasks.core.errors import LaunchHookInTheWay, WeightedGroup
from tasks.core.lifecycle_hooks import launch_hook_refusal
from tasks.core.mixed_instances import override_types, template_for, weighted_refusal
from tasks.core.requests import required_text
from tasks.core.tags import OPT_IN
from tasks.core.timing import parse_timing

logger = Logger()


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    data = event.get("input") or {}
    asg_name, instance_id = (required_text(data, k, f"input field {k!r}") for k in ("asg_name", "instance_id"))
    reason, timing = check_reason(data.get("reason", "manual")), parse_timing(data.get("timing"))
    execution_name, state_machine_arn = event["execution_name"], event["state_machine_arn"]
    logger.append_keys(asg=asg_name, instance_id=instance_id, execution=execution_name)

    raw = describe_group_raw(asg_name)
    group = group_from_response(raw)
    found = instances_by_id({instance_id, *(m.instance_id for m in group.members)})  # one call: the floor needs all
    instance = found.get(instance_id)
    # `asg-optimizer replace --force`: an operator's explicit manual swap outside the window or below the floor.
    forced = reason == "manual" and data.get("force") is True
    check_swappable(group, instance, instance_id, allow_spot=reason == "rebalance")
    policy = policy_of(group)
    swaps = running_swaps(state_machine_arn)
    running = swaps.get(instance_id, [])
    own_start = next((start for name, start in running if name == execution_name), float("inf"))
    check_not_in_flight(instance_id, execution_name, own_start, running)
    if reason in FLOOR_AND_WINDOW_REASONS and not forced:
        # Only swaps that started before ours count as taking an on-demand away: of two started together, the
        # first proceeds (as check_not_in_flight decides), so neither refuses because of the other.
        earlier = {i for i, runs in swaps.items() if i != instance_id
                   and any((start, name) < (own_start, execution_name) for name, start in runs)}
        spot_ids = {i for i, found_instance in found.items() if not found_instance.on_demand}
        check_floor_and_window(group, policy, instance_id, spot_ids, earlier, datetime.now(UTC))
    assert instance is not None  # check_swappable refused a missing instance
    weighted = weighted_refusal(group)
    if weighted:
        raise WeightedGroup(weighted)
    hook = launch_hook_refusal(asg_name, lifecycle_hooks(asg_name), bypass=policy.bypass_launch_hooks)
    if hook:
        raise LaunchHookInTheWay(hook)
    template = template_for(group, group.member(instance_id))
    logger.info("swap validated", extra={"reason": reason, "forced": forced})
    return {
        "asg_name": asg_name,
        "instance_id": instance_id,
        "reason": reason,
        "execution_name": execution_name,
        "instance_type": instance.instance_type,
        "subnet_id": instance.subnet_id,
        "availability_zone": instance.availability_zone,
        "launch_template_id": template.template_id,
        "launch_template_name": template.name,
        "launch_template_version": template.version,
        "override_types": override_types(group, template),  # None: any compatible type
        "behind_load_balancer": group.behind_load_balancer,
        "desired_at_start": group.desired,
        "instance_tags": propagated_tags(raw),
        "group_tags": {k: v for k, v in group.tags.items() if k.startswith(OPT_IN)},  # the policy, for LaunchSpot
        **timing.flat(),
    }
