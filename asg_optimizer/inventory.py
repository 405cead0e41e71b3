"""The CLI's reads of groups, instances and replacement executions: the readers of tasks/aws/ (the functions'
own, one per resource), called on the operator's session (--profile, --region, --endpoint-url), with the CLI's
errors and the records as the CLI prints them. Nothing here calls AWS itself."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Any

from asg_optimizer.aws_session import CliError, Target
from asg_optimizer.timeline import FALLBACK, SWAP
from tasks.aws import executions as execution_reader
from tasks.aws import groups as group_reader
from tasks.aws.clients import clients_from
from tasks.aws.instances import raw_instances_by_id
from tasks.core.errors import GroupNotFound

EXECUTION_PAGE = 100


def describe_group(target: Target, name: str) -> dict[str, Any]:
    with clients_from(target.client):
        try:
            return group_reader.describe_group_raw(name)
        except GroupNotFound as error:
            raise CliError(f"{error} in {target.region_name}") from None


def group_exists(target: Target, name: str) -> bool:
    with clients_from(target.client):
        return group_reader.group_exists(name)


def opted_in_groups(target: Target) -> list[dict[str, Any]]:
    """Every group tagged `AsgOptimiser=true`, by name."""
    with clients_from(target.client):
        return sorted(group_reader.opted_in_groups(), key=lambda g: g["AutoScalingGroupName"])


def instances(target: Target, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Instances by id; an id EC2 no longer knows is absent, as for the functions."""
    with clients_from(target.client):
        return raw_instances_by_id(ids)


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
    with clients_from(target.client):  # each listing takes its client now; its pages are read later
        listings = [_kind(kind, execution_reader.executions(arn, status, page_size=EXECUTION_PAGE))
                    for kind, arn in machines]
    return heapq.merge(*listings, key=lambda e: e["startDate"], reverse=True)


def _kind(kind: str, listing: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return ({**execution, "kind": kind} for execution in listing)
