"""What a CreateFleet `instant` answer means for a swap: launched, no capacity or a spot quota reached (outcomes),
or a real failure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks.core.cooldowns import QUOTA_CODES
from tasks.core.prices import Pool

# Codes that say "this pool cannot give us a spot now", not "the request is wrong".
CAPACITY_CODES = frozenset({"InsufficientInstanceCapacity", "UnfulfillableCapacity", "SpotMaxPriceTooLow",
                            "InsufficientCapacity", "Unsupported"})


class LaunchFailed(Exception):
    """CreateFleet refused the request for a reason other than capacity (template, permissions, limits)."""


@dataclass(frozen=True)
class FleetResult:
    instance_id: str | None
    instance_type: str | None
    exhausted: tuple[Pool, ...]  # pools that reported no capacity, to cool down
    quota: str = ""  # "CODE: message" when the account's spot quota refused the launch


def read_create_fleet(response: Mapping[str, Any], availability_zone: str) -> FleetResult:
    """The launched instance, the spot quota that refused it, or the pools without capacity; raise LaunchFailed
    for any other error.

    Every override of our request is in the one subnet of the on-demand, so each pool is (type, that zone).
    """
    for launched in response.get("Instances", []):
        if launched.get("InstanceIds"):
            return FleetResult(launched["InstanceIds"][0], launched.get("InstanceType"), ())
    errors = response.get("Errors", [])
    quota = next((e for e in errors if e.get("ErrorCode") in QUOTA_CODES), None)
    other = [e for e in errors if e.get("ErrorCode") not in CAPACITY_CODES | QUOTA_CODES]
    if other:
        raise LaunchFailed(f"CreateFleet: {other[0].get('ErrorCode')}: {other[0].get('ErrorMessage', '')}".strip())
    pools = {
        Pool(str(e.get("LaunchTemplateAndOverrides", {}).get("Overrides", {}).get("InstanceType")), availability_zone)
        for e in errors
    }
    if quota is not None:
        return FleetResult(None, None, (), f"{quota.get('ErrorCode')}: {quota.get('ErrorMessage', '')}".strip())
    return FleetResult(None, None, tuple(sorted(pools)))
