"""Validate: refuse the swap unless the instance is an on-demand, InService, unprotected member of an
opted-in ASG that no other execution is replacing. Changes nothing; returns the facts later steps need."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws.clients import aws_handler
from tasks.aws.executions import running_swaps
from tasks.aws.groups import describe_group_raw, group_from_response, lifecycle_hooks, propagated_tags
from tasks.aws.instances import describe_instance
from tasks.core.eligibility import check_not_in_flight, check_reason, check_swappable
from tasks.core.errors import LaunchHookInTheWay, WeightedGroup
from tasks.core.lifecycle_hooks import launch_hook_refusal
from tasks.core.mixed_instances import override_types, template_for, weighted_refusal
from tasks.core.policy import PolicyError, parse_policy
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
    instance = describe_instance(instance_id)
    # `asg-optimizer replace --force`: an operator's explicit manual swap in a group that is not opted in.
    forced = reason == "manual" and data.get("force") is True
    check_swappable(group, instance, instance_id, require_opt_in=not forced, allow_spot=reason == "rebalance")
    running = running_swaps(state_machine_arn).get(instance_id, [])
    own_start = next((start for name, start in running if name == execution_name), float("inf"))
    check_not_in_flight(instance_id, execution_name, own_start, running)
    assert instance is not None  # check_swappable refused a missing instance
    weighted = weighted_refusal(group)
    if weighted:
        raise WeightedGroup(weighted)
    try:
        bypass = parse_policy(asg_name, group.tags, default_grace_period=0).bypass_launch_hooks
    except PolicyError:
        bypass = False  # LaunchSpot refuses the malformed tag by name
    hook = launch_hook_refusal(asg_name, lifecycle_hooks(asg_name), bypass=bypass)
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
