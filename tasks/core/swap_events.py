"""The events every swap publishes on the account's default EventBridge bus, so teams can route to our spots
what their launch hook would have done (attached spots skip launch hooks).

Schema (docs/web-fleets.md): source `asg-optimizer`; detail-type one of DETAIL_TYPES; detail carries
`asg_name`, `execution_name`, `reason`, `availability_zone`, the instances involved (`on_demand_instance_id`
and `spot_instance_id` for a swap, `interrupted_instance_id` for an interruption) and the swap's
`launch_template` (`id`, `name`, `version`), plus `why` for a failure. EventBridge delivers at least once, and a
retried step may publish again: (`execution_name`, detail-type) identifies an event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SOURCE = "asg-optimizer"
SPOT_ATTACHED = "Spot Attached"
ON_DEMAND_RETIRED = "On-Demand Retired"
SWAP_FAILED = "Swap Failed"
INTERRUPTION_HANDLED = "Interruption Handled"
DETAIL_TYPES = (SPOT_ATTACHED, ON_DEMAND_RETIRED, SWAP_FAILED, INTERRUPTION_HANDLED)
DEFAULT_BUS = "default"


def swap_detail(event: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The detail of a replacement workflow's event, from the state the steps share."""
    spot = event.get("spot") or {}
    return {
        "asg_name": event.get("asg_name"),
        "execution_name": event.get("execution_name"),
        "reason": event.get("reason"),
        "on_demand_instance_id": event.get("instance_id"),
        "spot_instance_id": spot.get("spot_instance_id"),
        "spot_instance_type": spot.get("spot_instance_type"),
        "availability_zone": event.get("availability_zone"),
        "launch_template": {"id": event.get("launch_template_id"), "name": event.get("launch_template_name"),
                            "version": event.get("launch_template_version")},
        **extra,
    }


def entry(detail_type: str, detail: Mapping[str, Any], resources: list[str] | None = None) -> dict[str, Any]:
    """One PutEvents entry on the default bus."""
    if detail_type not in DETAIL_TYPES:
        raise ValueError(f"unknown detail-type {detail_type!r}; known: {', '.join(DETAIL_TYPES)}")
    return {"Source": SOURCE, "DetailType": detail_type, "Detail": json.dumps(dict(detail), sort_keys=True),
            "EventBusName": DEFAULT_BUS, "Resources": list(resources or [])}
