"""AMIs carry their platform, as in EC2: moto reports neither `PlatformDetails` nor `UsageOperation` for an AMI or
an instance, so every instance would look like Linux/UNIX and be priced so.

`images` maps an AMI id to its PlatformDetails; the local AMIs below cover the platforms EC2 bills differently.
An AMI not listed is Windows when moto's own image says `platform: windows`, Linux/UNIX otherwise. Instances
report the platform of the AMI they were launched from (EC2 keeps it for the instance's life).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moto.ec2.models.amis import Ami
from moto.ec2.models.instances import Instance

from asg_optimizer.local.fleet import IMAGE_ID

LINUX, WINDOWS, RHEL, SUSE = "Linux/UNIX", "Windows", "Red Hat Enterprise Linux", "SUSE Linux"
SQL_SERVER = "Windows with SQL Server Standard"
WINDOWS_IMAGE, RHEL_IMAGE = "ami-0b1c2d3e4f5a60711", "ami-0c1d2e3f4a5b60712"
SUSE_IMAGE, SQL_SERVER_IMAGE = "ami-0d1e2f3a4b5c60713", "ami-0e1f2a3b4c5d60714"
# EC2's billing codes per platform (the AMI's UsageOperation), as DescribeImages/DescribeInstances report them.
USAGE_OPERATIONS = {LINUX: "RunInstances", WINDOWS: "RunInstances:0002", RHEL: "RunInstances:0010",
                    SUSE: "RunInstances:000g", SQL_SERVER: "RunInstances:0006"}


@dataclass
class PlatformModel:
    images: dict[str, str] = field(default_factory=lambda: {
        IMAGE_ID: LINUX, WINDOWS_IMAGE: WINDOWS, RHEL_IMAGE: RHEL, SUSE_IMAGE: SUSE, SQL_SERVER_IMAGE: SQL_SERVER})
    _saved: dict[Any, dict[str, Any]] = field(default_factory=dict)  # class -> its own attributes we replaced

    def platform_of(self, image_id: str, moto_platform: str | None = None) -> str:
        return self.images.get(image_id) or (WINDOWS if moto_platform == "windows" else LINUX)

    def install(self) -> None:
        if self._saved:
            return
        model = self
        self._saved = {cls: {name: cls.__dict__.get(name) for name in ("platform_details", "usage_operation")}
                       for cls in (Instance, Ami)}

        def instance_platform(instance: Instance) -> str:
            return model.platform_of(instance.image_id, instance.platform)

        def image_platform(image: Ami) -> str:
            return model.platform_of(image.id, image.platform)

        Instance.platform_details = property(instance_platform)  # type: ignore[attr-defined]
        Instance.usage_operation = property(  # type: ignore[attr-defined]
            lambda i: USAGE_OPERATIONS.get(instance_platform(i), "RunInstances"))
        Ami.platform_details = property(image_platform)  # type: ignore[attr-defined]
        Ami.usage_operation = property(  # type: ignore[attr-defined]
            lambda a: USAGE_OPERATIONS.get(image_platform(a), "RunInstances"))

    def uninstall(self) -> None:
        for cls, saved in self._saved.items():
            for name, value in saved.items():
                if value is None:
                    if name in cls.__dict__:
                        delattr(cls, name)
                else:
                    setattr(cls, name, value)
        self._saved = {}
