"""Instance type facts from DescribeInstanceTypes (every page, once per invocation) and the launch template's
block device mappings, for the compatibility core."""

from __future__ import annotations

import time
from typing import Any

from tasks.aws.clients import client
from tasks.core.errors import InvalidInput
from tasks.core.instance_types import InstanceTypeInfo, maps_instance_store, type_info

# A region offers ~900 types: ten pages a lookup. They change a few times a year, so a warm container keeps
# them for a while; a family launched meanwhile only means one candidate fewer until the next refresh.
CATALOG_TTL_SECONDS = 6 * 3600
_cache: dict[str, Any] = {}


class InstanceCatalog:
    """All instance types the region offers; fetched on first use, kept by the container for CATALOG_TTL_SECONDS."""

    def all(self) -> dict[str, InstanceTypeInfo]:
        fetched = _cache.get("at")
        if fetched is None or time.monotonic() - fetched > CATALOG_TTL_SECONDS:
            pages = client("ec2").get_paginator("describe_instance_types").paginate(
                PaginationConfig={"PageSize": 100}
            )
            _cache["types"] = {raw["InstanceType"]: type_info(raw) for page in pages for raw in page["InstanceTypes"]}
            _cache["at"] = time.monotonic()
        types: dict[str, InstanceTypeInfo] = _cache["types"]
        return types

    def get(self, instance_type: str) -> InstanceTypeInfo:
        found = self.all().get(instance_type)
        if found is None:
            raise InvalidInput(f"instance type {instance_type!r} is not offered in this region")
        return found


def template_data(template: dict[str, Any]) -> dict[str, Any]:
    """The group's launch template version's LaunchTemplateData (one DescribeLaunchTemplateVersions)."""
    request: dict[str, Any] = {"Versions": [template["Version"]]}
    if template.get("LaunchTemplateId"):
        request["LaunchTemplateId"] = template["LaunchTemplateId"]
    else:
        request["LaunchTemplateName"] = template["LaunchTemplateName"]
    versions = client("ec2").describe_launch_template_versions(**request)["LaunchTemplateVersions"]
    return dict(versions[0].get("LaunchTemplateData", {})) if versions else {}


def template_maps_instance_store(data: dict[str, Any]) -> bool:
    """Whether the launch template version's data maps instance-store volumes."""
    return maps_instance_store(data)


def forget_catalog() -> None:
    """Drop the cached catalog (tests that change the offered types)."""
    _cache.clear()
