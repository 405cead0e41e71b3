"""Validate: refuse the swap unless the instance is an on-demand (any instance when the replacement is on-demand or
a rebalance), InService, unprotected member of an opted-in ASG with a well-formed policy, within the group's window
and above its on-demand floor when the swap takes an on-demand away (an operator's `replace --force` waives only
the window and the floor), then claim the instance for this execution in the group's coordination record (a
conditional write: exactly one execution works on an instance, however many start; the other claims in the record
are the swaps in flight that the floor counts). Changes nothing on the group; returns the facts later steps need,
the replacement's market and type among them. A refusal ends the execution as outcome `refused`, not FAILED, and
leaves no claim."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from tasks.aws.commitments import manual_swap_strands
from tasks.aws.coordination import claim, cool_hooked_group, release_claim
from tasks.aws.groups import describe_group_raw, group_from_response, lifecycle_hooks, propagated_tags
from tasks.aws.instances import instances_by_id
from tasks.aws.invocation import logged_metered_retryable, logger, metrics
from tasks.core.eligibility import (
    ON_DEMAND,
    SPOT,
    check_claimed,
    check_floor_and_window,
    check_instance_type,
    check_market,
    check_reason,
    check_swappable,
    policy_of,
    takes_on_demand_away,
)
from tasks.core.errors import CoveredByCommitment, InvalidInput, LaunchHookInTheWay, SwapRefused, WeightedGroup
from tasks.core.lifecycle_hooks import launch_hook_refusal
from tasks.core.mixed_instances import override_types, template_for, weighted_refusal
from tasks.core.prices import operating_system
from tasks.core.requests import required_text
from tasks.core.rollout import parse_target
from tasks.core.steps import SwapState, ValidateInput
from tasks.core.tags import OPT_IN
from tasks.core.timing import parse_timing


@logged_metered_retryable
def handler(event: ValidateInput, context: Any) -> SwapState:
    try:
        return _validate(event)
    except SwapRefused as refusal:  # an outcome, not a failure: counted on the dashboard's "Swaps skipped"
        asg_name = (event.get("input") or {}).get("asg_name")
        if isinstance(asg_name, str) and asg_name:
            metrics.add_dimension(name="AutoScalingGroup", value=asg_name)
        metrics.add_metadata(key="reason", value=type(refusal).__name__)
        metrics.add_metric(name="SwapsSkipped", unit=MetricUnit.Count, value=1)  # flushed as the invocation ends
        raise


def _validate(event: ValidateInput) -> SwapState:
    data = event.get("input") or {}
    asg_name, instance_id = (required_text(data, k, f"input field {k!r}") for k in ("asg_name", "instance_id"))
    reason, timing = check_reason(data.get("reason", "manual")), parse_timing(data.get("timing"))
    market = check_market(data.get("market", "spot"), reason)
    wanted_type = check_instance_type(data.get("instance_type"))
    execution_name = event["execution_name"]
    logger.append_keys(asg=asg_name, instance_id=instance_id, execution=execution_name)

    raw = describe_group_raw(asg_name)
    group = group_from_response(raw)
    found = instances_by_id({instance_id, *(m.instance_id for m in group.members)})  # one call: the floor needs all
    instance = found.get(instance_id)
    # `asg-optimizer replace --force`: an operator's explicit manual swap outside the window or below the floor.
    forced = reason == "manual" and data.get("force") is True
    launch = parse_target(data["launch"]) if data.get("launch") is not None else None  # a rollout's target
    if launch is not None and reason != "rollout":
        raise InvalidInput(f"launch is for reason 'rollout' only, got reason {reason!r}")
    check_swappable(group, instance, instance_id, allow_spot=reason in ("rebalance", "rollout") or market == ON_DEMAND)
    policy = policy_of(group)
    assert instance is not None  # check_swappable refused a missing instance
    weighted = weighted_refusal(group)
    if weighted:
        raise WeightedGroup(weighted)
    hook = launch_hook_refusal(asg_name, lifecycle_hooks(asg_name), bypass=policy.bypass_launch_hooks)
    if hook:  # the scanner no longer reads hooks: it skips the group while this cools (tasks/aws/coordination.py)
        cool_hooked_group(asg_name, hook, source=execution_name)
        raise LaunchHookInTheWay(hook)
    # A manual swap to spot never strands a commitment unless forced (the scanner and launch events keep covered
    # instances themselves; a rollout chooses its market, docs/replacement.md).
    if reason == "manual" and market == SPOT and not forced and policy.uses_commitments:
        stranded = manual_swap_strands(instance)
        if stranded:
            raise CoveredByCommitment(f"instance {instance_id} in ASG {asg_name} is {stranded}")
    claimed = claim(asg_name, instance_id, execution_name)  # after every refusal that needs no claim
    check_claimed(instance_id, claimed.holder)
    if takes_on_demand_away(reason, market) and not forced and instance.on_demand:
        # The swaps in flight are the other claims as our write left the record: of two claims made together,
        # the later one sees the earlier, so exactly one of them counts the other.
        spot_ids = {i for i, found_instance in found.items() if not found_instance.on_demand}
        try:
            check_floor_and_window(group, policy, instance_id, spot_ids, claimed.others, datetime.now(UTC))
        except SwapRefused:
            release_claim(asg_name, instance_id, execution_name)
            raise
    template = template_for(group, group.member(instance_id))
    platform = operating_system(instance.platform_details)  # refuses a platform without a spot market, first
    logger.info("swap validated", extra={"reason": reason, "forced": forced})
    return {
        "asg_name": asg_name,
        "instance_id": instance_id,
        "reason": reason,
        "execution_name": execution_name,
        "instance_type": instance.instance_type,
        "market": market,  # the replacement's: LaunchSpot or LaunchOnDemand
        "target_instance_type": wanted_type or instance.instance_type,
        "subnet_id": instance.subnet_id,
        "availability_zone": instance.availability_zone,
        "platform_details": platform.platform_details,  # spot and on-demand are priced for this OS
        "launch_template_id": template.template_id,
        "launch_template_name": template.name,
        "launch_template_version": (launch and launch.launch_template_version) or template.version,
        "image_id": launch.image_id if launch else None,  # a rollout to an AMI: every override launches it
        "override_types": override_types(group, template),  # None: any compatible type
        "behind_load_balancer": group.behind_load_balancer,
        "desired_at_start": group.desired,
        "instance_tags": propagated_tags(raw),
        "group_tags": {k: v for k, v in group.tags.items() if k.startswith(OPT_IN)},  # the policy, for LaunchSpot
        **timing.fields(),
    }
