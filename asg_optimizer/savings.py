"""What a fleet costs per hour now: on-demand members at their on-demand price, spot members at the spot price in
force in their pool, through the same price lookups the Lambda functions use. Call before and after swaps."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

from tasks.aws import client
from tasks.core.prices import OperatingSystem, operating_system, saving_percent
from tasks.pricing import PriceBook


@dataclass
class FleetCost:
    """USD per hour, in total and by group."""

    total: float = 0.0
    by_group: dict[str, float] = field(default_factory=dict)

    def saving_against(self, before: FleetCost) -> tuple[float, float]:
        """(USD per hour saved, percent) going from `before` to this."""
        return round(before.total - self.total, 4), saving_percent(before.total, self.total)


def fleet_hourly_cost(asg_names: list[str], region: str | None = None) -> FleetCost:
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    groups = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=asg_names)["AutoScalingGroups"]
    owner = {i["InstanceId"]: g["AutoScalingGroupName"] for g in groups for i in g["Instances"]}
    books: dict[OperatingSystem, PriceBook] = {}
    cost = FleetCost(by_group=dict.fromkeys(asg_names, 0.0))
    spot_pools: dict[tuple[OperatingSystem, str], list[tuple[str, str]]] = defaultdict(list)
    if owner:
        pages = client("ec2").get_paginator("describe_instances").paginate(InstanceIds=sorted(owner))
        for raw in (i for page in pages for r in page["Reservations"] for i in r["Instances"]):
            os_ = operating_system(raw.get("PlatformDetails"))
            book = books.setdefault(os_, PriceBook(region, os_))
            if raw.get("InstanceLifecycle") == "spot":
                spot_pools[(os_, raw["Placement"]["AvailabilityZone"])].append((raw["InstanceId"], raw["InstanceType"]))
            else:
                cost.by_group[owner[raw["InstanceId"]]] += book.on_demand(raw["InstanceType"]).price
    for (os_, zone), members in spot_pools.items():
        prices = books[os_].spot_prices({t for _, t in members}, zone)
        for instance_id, instance_type in members:
            cost.by_group[owner[instance_id]] += prices[instance_type]
    cost.by_group = {k: round(v, 4) for k, v in cost.by_group.items()}
    cost.total = round(sum(cost.by_group.values()), 4)
    return cost
