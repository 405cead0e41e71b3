"""What the CLI reads from AWS, through the operator's session (tasks/aws/ is the Lambda side's own,
on the functions' clients): groups, their instances, and the replacement executions, newest first."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from asg_optimizer.aws_session import CliError, Target
from asg_optimizer.timeline import FALLBACK, SWAP
from tasks.core.naming import asg_part_of, execution_name, instance_of
from tasks.core.tags import OPT_IN, OPT_IN_VALUE

GROUP_PAGE = 100
INSTANCE_FILTER_BATCH = 200  # values per DescribeInstances filter
EXECUTION_PAGE = 100
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def describe_group(target: Target, name: str) -> dict[str, Any]:
    groups = target.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ]
    if not groups:
        raise CliError(f"ASG {name} does not exist in {target.region_name}")
    return dict(groups[0])


def group_exists(target: Target, name: str) -> bool:
    groups = target.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    return bool(groups["AutoScalingGroups"])


def opted_in_groups(target: Target) -> list[dict[str, Any]]:
    """Every group tagged `AsgOptimiser=true`, by name."""
    pages = target.client("autoscaling").get_paginator("describe_auto_scaling_groups").paginate(
        Filters=[{"Name": f"tag:{OPT_IN}", "Values": [OPT_IN_VALUE]}], PaginationConfig={"PageSize": GROUP_PAGE}
    )
    groups = [g for page in pages for g in page["AutoScalingGroups"]]
    return sorted(groups, key=lambda g: g["AutoScalingGroupName"])


def instances(target: Target, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Instances by id; an id EC2 no longer knows is absent (an instance-id filter, unlike InstanceIds, does not
    fail the whole call for one vanished instance)."""
    unique = sorted(set(ids))
    paginator = target.client("ec2").get_paginator("describe_instances")
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(unique), INSTANCE_FILTER_BATCH):
        chunk = unique[start:start + INSTANCE_FILTER_BATCH]
        for page in paginator.paginate(Filters=[{"Name": "instance-id", "Values": chunk}]):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    found[instance["InstanceId"]] = instance
    return found


def is_spot(instance: dict[str, Any]) -> bool:
    return instance.get("InstanceLifecycle") == "spot"


def executions(target: Target, status: str | None = None, *, fallbacks: bool = True) -> Iterator[dict[str, Any]]:
    """Executions of the replacement state machine and (with `fallbacks`) of the interruption fallback's, merged
    newest first, each with its `kind` (swap or fallback). Page by page: a caller that stops early reads no
    further pages of either listing."""
    machines = [(SWAP, target.state_machine_arn())]
    fallback_arn = target.interruption_machine_arn() if fallbacks else None
    if fallback_arn:
        machines.append((FALLBACK, fallback_arn))
    listings = [_listing(target, arn, kind, status) for kind, arn in machines]
    return heapq.merge(*listings, key=lambda e: e["startDate"], reverse=True)


def _listing(target: Target, machine_arn: str, kind: str, status: str | None) -> Iterator[dict[str, Any]]:
    """One state machine's executions in ListExecutions' own order (newest first)."""
    kwargs: dict[str, Any] = {"stateMachineArn": machine_arn, "PaginationConfig": {"PageSize": EXECUTION_PAGE}}
    if status:
        kwargs["statusFilter"] = status
    for page in target.client("stepfunctions").get_paginator("list_executions").paginate(**kwargs):
        for execution in page["executions"]:
            yield {**execution, "kind": kind}


def belongs_to(name: str, asg_name: str) -> bool:
    """Whether an execution name is one we made for this group (the ASG part is compared as execution_name
    sanitizes and cuts it for that instance id)."""
    instance_id = instance_of(name)
    if instance_id is None:
        return False
    return asg_part_of(name) == asg_part_of(execution_name(asg_name, instance_id, _EPOCH))
