"""Read EC2 instances into the core's plain facts: one by id, by filter, or in batches of 1,000 ids a
DescribeInstances call for fleet-wide reads."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from tasks.aws.clients import batches, client, error_code
from tasks.core.model import Instance

INSTANCE_BATCH = 1000
_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")


def instance_from_response(raw: dict[str, Any]) -> Instance:
    return Instance(
        instance_id=raw["InstanceId"],
        state=raw["State"]["Name"],
        instance_type=raw.get("InstanceType", ""),
        subnet_id=raw.get("SubnetId"),
        availability_zone=raw.get("Placement", {}).get("AvailabilityZone", ""),
        lifecycle=raw.get("InstanceLifecycle"),
        tags={t["Key"]: t.get("Value", "") for t in raw.get("Tags", [])},
        launch_time=str(raw.get("LaunchTime", "")) or None,
        platform_details=raw.get("PlatformDetails"),
        image_id=raw.get("ImageId", ""),
        tenancy=raw.get("Placement", {}).get("Tenancy", "default"),
    )


# Instance states in which a spot of ours still costs money or may still come up.
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def raw_instances(filters: list[dict[str, Any]] | None = None, ids: list[str] | None = None) -> list[dict[str, Any]]:
    """All matching instances as DescribeInstances describes them, 1,000 a page."""
    kwargs: dict[str, Any] = {"Filters": filters or []}
    if ids:
        kwargs["InstanceIds"] = ids
    else:
        kwargs["PaginationConfig"] = {"PageSize": INSTANCE_BATCH}
    pages = client("ec2").get_paginator("describe_instances").paginate(**kwargs)
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def describe_instances(filters: list[dict[str, Any]] | None = None, ids: list[str] | None = None) -> list[Instance]:
    """All matching instances, 1,000 a page."""
    return [instance_from_response(raw) for raw in raw_instances(filters, ids)]


def describe_instance(instance_id: str) -> Instance | None:
    """One instance, or None when EC2 no longer knows it."""
    try:
        found = describe_instances(ids=[instance_id])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "InvalidInstanceID.NotFound":
            return None
        raise
    return found[0] if found else None


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


def raw_instances_by_id(ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Instances by id as DescribeInstances describes them (the CLI prints these); an id EC2 no longer knows is
    absent."""
    unique = sorted(set(ids))
    return {raw["InstanceId"]: raw for chunk in batches(unique, INSTANCE_BATCH) for raw in _describe_batch(chunk)}


def instances_by_id(ids: Iterable[str]) -> dict[str, Instance]:
    return {instance_id: instance_from_response(raw) for instance_id, raw in raw_instances_by_id(ids).items()}
