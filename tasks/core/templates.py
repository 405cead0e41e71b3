"""Launch templates an `instant` CreateFleet cannot launch a swap from, found before anything is launched."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.core.errors import SwapRefused


class UnsupportedLaunchTemplate(SwapRefused):
    """The group's launch template sets something the swap's fleet request cannot be combined with."""


def fleet_refusal(launch_template_data: Mapping[str, Any]) -> str | None:
    """Why the swap cannot launch from this template version, or None.

    - InstanceMarketOptions: a fleet chooses the market itself (its target capacity type and SpotOptions), and
      CreateFleet refuses a template that sets one.
    - NetworkInterfaces: the swap launches into the on-demand's subnet (an override's SubnetId), and EC2 refuses
      network interfaces together with an instance-level subnet (InvalidParameterCombination).
    """
    if launch_template_data.get("InstanceMarketOptions"):
        return ("launch template sets InstanceMarketOptions, which CreateFleet refuses: the group's template must "
                "leave the market to the launcher")
    if launch_template_data.get("NetworkInterfaces"):
        return ("launch template sets NetworkInterfaces, which EC2 refuses together with the subnet the swap "
                "launches into: put the security groups in SecurityGroupIds instead")
    return None
