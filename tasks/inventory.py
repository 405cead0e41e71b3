"""Fleet-wide reads for the scanner and the sweep, in pages and batches so the number of calls does not grow with
the number of groups: 100 groups a DescribeAutoScalingGroups page, 1,000 ids a DescribeInstances call."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from tasks.aws import client, error_code
from tasks.core.lifecycle_hooks import launch_hook_refusal
from tasks.core.model import Group, Instance
from tasks.core.policy import PolicyError, parse_policy
from tasks.core.tags import OPT_IN, OPT_IN_VALUE
from tasks.describe import instance_from_response, lifecycle_hooks

GROUP_PAGE = 100  # DescribeAutoScalingGroups MaxRecords limit
INSTANCE_BATCH = 1000
MEMBERSHIP_BATCH = 50  # DescribeAutoScalingInstances limit
ACTIVE_REFRESH = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _group_pages(**kwargs: Any) -> list[dict[str, Any]]:
    pages = client("autoscaling").get_paginator("describe_auto_scaling_groups").paginate(
        **kwargs, PaginationConfig={"PageSize": GROUP_PAGE}
    )
    return [group for page in pages for group in page["AutoScalingGroups"]]


def opted_in_groups() -> list[dict[str, Any]]:
    """Every group tagged `AsgOptimiser=true`, filtered by the service rather than read and dropped here."""
    return _group_pages(Filters=[{"Name": f"tag:{OPT_IN}", "Values": [OPT_IN_VALUE]}])


def named_groups(names: Sequence[str]) -> list[dict[str, Any]]:
    """The named groups whether opted in or not (so a restricted scan can say why it skips one)."""
    return [group for chunk in _chunks(names, GROUP_PAGE) for group in _group_pages(AutoScalingGroupNames=chunk)]


def groups_with_tag_keys(keys: Sequence[str]) -> list[dict[str, Any]]:
    """Groups carrying any of `keys`, opted in or not."""
    return _group_pages(Filters=[{"Name": "tag-key", "Values": list(keys)}])


def _describe_batch(ids: list[str]) -> list[dict[str, Any]]:
    """One DescribeInstances for up to 1,000 ids (AWS answers explicit ids in one response; a NextToken is
    followed all the same). An id EC2 no longer knows fails the whole call, so drop the ids the error names and
    ask again (an instance can vanish between the group read and this one)."""
    while ids:
        try:
            pages = client("ec2").get_paginator("describe_instances").paginate(InstanceIds=ids)
            return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
        except ClientError as error:
            gone = set(_INSTANCE_ID.findall(str(error))) if error_code(error) == "InvalidInstanceID.NotFound" else set()
            if not gone & set(ids):
                raise
            ids = [i for i in ids if i not in gone]
    return []


def instances_by_id(ids: Iterable[str]) -> dict[str, Instance]:
    unique = sorted(set(ids))
    return {
        raw["InstanceId"]: instance_from_response(raw)
        for chunk in _chunks(unique, INSTANCE_BATCH)
        for raw in _describe_batch(chunk)
    }


def group_members(ids: Iterable[str]) -> dict[str, str]:
    """instance id -> its ASG, for those of `ids` that are in a group."""
    unique = sorted(set(ids))
    autoscaling = client("autoscaling")
    found: dict[str, str] = {}
    for chunk in _chunks(unique, MEMBERSHIP_BATCH):
        for item in autoscaling.describe_auto_scaling_instances(InstanceIds=chunk)["AutoScalingInstances"]:
            found[item["InstanceId"]] = item["AutoScalingGroupName"]
    return found


def active_refreshes(asg_names: Iterable[str]) -> dict[str, str]:
    """Groups with an instance refresh under way -> why. One call per group asked about: the scanner asks only
    about groups it is about to start swaps in (there is no fleet-wide refresh listing)."""
    autoscaling = client("autoscaling")
    busy: dict[str, str] = {}
    for name in sorted(set(asg_names)):
        refreshes = autoscaling.describe_instance_refreshes(AutoScalingGroupName=name, MaxRecords=5)
        for refresh in refreshes["InstanceRefreshes"]:
            if refresh.get("Status") in ACTIVE_REFRESH:
                busy[name] = f"instance refresh {refresh['InstanceRefreshId']} is {refresh['Status']}"
                break
    return busy


def launch_hook_blocks(groups: Iterable[Group]) -> dict[str, str]:
    """Groups whose launch lifecycle hooks attached spots would skip -> why (unless the group's policy bypasses
    them). One DescribeLifecycleHooks per group asked about: the scanner asks only about groups it picks in."""
    blocked: dict[str, str] = {}
    for group in groups:
        try:
            bypass = parse_policy(group.name, group.tags, default_grace_period=0).bypass_launch_hooks
        except PolicyError:
            continue  # the selection already skipped it by name
        why = launch_hook_refusal(group.name, lifecycle_hooks(group.name), bypass=bypass)
        if why:
            blocked[group.name] = why
    return blocked
