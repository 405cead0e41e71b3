"""Instance type facts from DescribeInstanceTypes (every page, once per invocation) and the launch template's
block device mappings, for the compatibility core."""

from __future__ import annotations

from typing import Any

from tasks.aws import client
from tasks.core.errors import InvalidInput
from tasks.core.instance_types import InstanceTypeInfo, maps_instance_store, type_info


class InstanceCatalog:
    """All instance types the region offers; fetched on first use and kept for the rest of the invocation.

    Make one per invocation: types change rarely, but a warm Lambda container lives for hours and a stale
    catalog would hide a newly launched family.
    """

    def __init__(self) -> None:
        self._types: dict[str, InstanceTypeInfo] | None = None

    def all(self) -> dict[str, InstanceTypeInfo]:
        if self._types is None:
            pages = client("ec2").get_paginator("describe_instance_types").paginate(
                PaginationConfig={"PageSize": 100}
            )
            self._types = {raw["InstanceType"]: type_info(raw) for page in pages for raw in page["InstanceTypes"]}
        return self._types

    def get(self, instance_type: str) -> InstanceTypeInfo:
        found = self.all().get(instance_type)
        if found is None:
            raise InvalidInput(f"instance type {instance_type!r} is not offered in this region")
        return found


def template_maps_instance_store(template: dict[str, Any]) -> bool:
    """Whether the group's launch template version maps instance-store volumes."""
    request: dict[str, Any] = {"Versions": [template["Version"]]}
    if template.get("LaunchTemplateId"):
        request["LaunchTemplateId"] = template["LaunchTemplateId"]
    else:
        request["LaunchTemplateName"] = template["LaunchTemplateName"]
    versions = client("ec2").describe_launch_template_versions(**request)["LaunchTemplateVersions"]
    return bool(versions) and maps_instance_store(versions[0].get("LaunchTemplateData", {}))
