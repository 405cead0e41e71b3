"""AMIs carry their platform, as in EC2: moto reports neither `PlatformDetails` nor `UsageOperation` for an AMI or
an instance, so every instance would look like Linux/UNIX and be priced so.

`images` maps an AMI id to its PlatformDetails; the local AMIs below cover the platforms EC2 bills differently.
An AMI not listed is Windows when moto's own image says `platform: windows`, Linux/UNIX otherwise. Instances
report the platform of the AMI they were launched from (EC2 keeps it for the instance's life).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moto.ec2.models.amis import Ami
from moto.ec2.models.instances import Instance

from asg_optimizer.local.group_builder import IMAGE_ID
from asg_optimizer.local.patching import Patches, Patching

LINUX, WINDOWS, RHEL, SUSE = "Linux/UNIX", "Windows", "Red Hat Enterprise Linux", "SUSE Linux"
SQL_SERVER = "Windows with SQL Server Standard"
WINDOWS_IMAGE, RHEL_IMAGE = "ami-0b1c2d3e4f5a60711", "ami-0c1d2e3f4a5b60712"
SUSE_IMAGE, SQL_SERVER_IMAGE = "ami-0d1e2f3a4b5c60713", "ami-0e1f2a3b4c5d60714"
# EC2's billing codes per platform (the AMI's UsageOperation), as DescribeImages/DescribeInstances report them.
USAGE_OPERATIONS = {LINUX: "RunInstances", WINDOWS: "RunInstances:0002", RHEL: "RunInstances:0010",
                    SUSE: "RunInstances:000g", SQL_SERVER: "RunInstances:0006"}


@dataclass
class PlatformModel(Patching):
    images: dict[str, str] = field(default_factory=lambda: {
        IMAGE_ID: LINUX, WINDOWS_IMAGE: WINDOWS, RHEL_IMAGE: RHEL, SUSE_IMAGE: SUSE, SQL_SERVER_IMAGE: SQL_SERVER})
    _patches: Patches = field(default_factory=Patches)

    def platform_of(self, image_id: str, moto_platform: str | None = None) -> str:
        return self.images.get(image_id) or (WINDOWS if moto_platform == "windows" else LINUX)

    def _patch(self, patches: Patches) -> None:
        model = self

        def instance_platform(instance: Instance) -> str:
            return model.platform_of(instance.image_id, instance.platform)

        def image_platform(image: Ami) -> str:
            return model.platform_of(image.id, image.platform)

        patches.add(Instance, platform_details=property(instance_platform),
                    usage_operation=property(lambda i: USAGE_OPERATIONS.get(instance_platform(i), "RunInstances")))
        patches.add(Ami, platform_details=property(image_platform),
                    usage_operation=property(lambda a: USAGE_OPERATIONS.get(image_platform(a), "RunInstances")))
