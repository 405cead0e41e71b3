"""What a fleet costs per hour now: on-demand members at their on-demand price, spot members at the spot price in
force in their pool. The demo calls it before and after its swaps; the prices come from the same lookups
`asg-optimizer status` uses (asg_optimizer.hourly_cost), so the two can never disagree."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from asg_optimizer.aws_session import Target
from asg_optimizer.hourly_cost import price_instances
from tasks.aws.clients import clients_from
from tasks.aws.groups import named_groups
from tasks.aws.instances import raw_instances_by_id
from tasks.core.prices import saving_percent


@dataclass
class FleetCost:
    """USD per hour, in total and by group (instances no source prices are left out, and listed)."""

    total: float = 0.0
    by_group: dict[str, float] = field(default_factory=dict)
    unpriced: dict[str, str] = field(default_factory=dict)

    def saving_against(self, before: FleetCost) -> tuple[float, float]:
        """(USD per hour saved, percent) going from `before` to this."""
        return round(before.total - self.total, 4), saving_percent(before.total, self.total)


def fleet_hourly_cost(asg_names: list[str], region: str | None = None) -> FleetCost:
    target = Target(region=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    with clients_from(target.client):  # the functions' readers (tasks/aws/), on the demo's session
        groups = named_groups(asg_names)
        owner = {i["InstanceId"]: g["AutoScalingGroupName"] for g in groups for i in g["Instances"]}
        instances = raw_instances_by_id(owner)
    sheet = price_instances(target, instances)
    by_group = dict.fromkeys(asg_names, 0.0)
    for instance_id, priced in sheet.costs.items():
        by_group[owner[instance_id]] += priced.now
    by_group = {name: round(cost, 4) for name, cost in by_group.items()}
    return FleetCost(round(sum(by_group.values()), 4), by_group, dict(sheet.unpriced))
