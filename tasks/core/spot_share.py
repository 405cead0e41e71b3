"""The share of the opted-in fleet's serving capacity that runs on spot: the number an SRE watches to see the
optimizer working (and the market taking it back). Fleet-wide, one metric: a per-group dimension would cost a
custom metric per group, and `asg-optimizer status` already shows each group."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tasks.core.model import Group, Instance


def spot_share_percent(groups: Iterable[Group], instances: Mapping[str, Instance]) -> float | None:
    """Spot members as a percentage of the InService members of `groups`; None when none is InService. A member
    whose instance was not described (gone meanwhile) is left out of both counts."""
    serving = [instances[m.instance_id] for g in groups for m in g.members
               if m.in_service and m.instance_id in instances]
    if not serving:
        return None
    return round(100.0 * sum(1 for i in serving if not i.on_demand) / len(serving), 1)
