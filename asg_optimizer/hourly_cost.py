"""What a fleet costs per hour now and what its spot instances save, for `status`.

An estimate, on purpose cheap to get: on-demand prices from the bundled snapshot (tasks/data/prices.json; the
Pricing API only for types it lacks), spot prices from one DescribeSpotPriceHistory read (the price in force
per pool). An instance neither source prices is listed as unpriced rather than counted as free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from asg_optimizer.aws_session import Target
from tasks.aws.clients import clients_from
from tasks.aws.prices import pricing_api_price, snapshot, spot_prices_in_force
from tasks.core.errors import UnsupportedPlatform
from tasks.core.prices import OperatingSystem, Pool, operating_system, snapshot_price


@dataclass(frozen=True)
class InstanceCost:
    on_demand: float  # what the instance would cost on-demand
    now: float  # what it costs now: the spot price for a spot, else the on-demand price

    @property
    def saving(self) -> float:
        return self.on_demand - self.now


@dataclass
class PriceSheet:
    costs: dict[str, InstanceCost] = field(default_factory=dict)  # by instance id
    unpriced: dict[str, str] = field(default_factory=dict)  # instance id -> why
    snapshot_as_of: str = ""
    pricing_api_types: list[str] = field(default_factory=list)  # on-demand prices the snapshot lacked

    def totals(self, instance_ids: Iterable[str]) -> tuple[float, float, list[str]]:
        """(cost per hour, saving per hour, unpriced ids) over some instances."""
        cost = saving = 0.0
        missing = []
        for instance_id in instance_ids:
            priced = self.costs.get(instance_id)
            if priced is None:
                missing.append(instance_id)
                continue
            cost += priced.now
            saving += priced.saving
        return round(cost, 4), round(saving, 4), missing


def _operating_system(instance: Mapping[str, Any]) -> OperatingSystem:
    return operating_system(instance.get("PlatformDetails"))


def _pricing_api_price(target: Target, instance_type: str, os: OperatingSystem) -> float | None:
    try:
        return pricing_api_price(target.region_name, instance_type, os)
    except (ClientError, BotoCoreError):  # not reachable, not allowed, or an emulator without the API
        return None


def _spot_prices(pools: set[Pool], os: OperatingSystem) -> dict[Pool, float]:
    if not pools:
        return {}
    prices = spot_prices_in_force({p.instance_type for p in pools}, os)
    return {pool: price for pool, price in prices.items() if pool in pools}


def price_instances(target: Target, instances: Mapping[str, Mapping[str, Any]]) -> PriceSheet:
    """Prices through the readers of tasks/aws/prices.py, on the CLI's own session."""
    with clients_from(target.client):
        return _price_instances(target, instances)


def _price_instances(target: Target, instances: Mapping[str, Mapping[str, Any]]) -> PriceSheet:
    sheet = PriceSheet(snapshot_as_of=str(snapshot().get("as_of", "")))
    on_demand: dict[tuple[str, str], float | None] = {}
    by_os: dict[str, tuple[OperatingSystem, set[Pool]]] = {}
    for instance_id, instance in instances.items():
        try:
            os = _operating_system(instance)
        except UnsupportedPlatform as error:
            sheet.unpriced[instance_id] = str(error)
            continue
        instance_type = instance.get("InstanceType", "")
        key = (instance_type, os.platform_details)
        if key not in on_demand:
            on_demand[key] = snapshot_price(snapshot(), target.region_name, instance_type, os)
            if on_demand[key] is None:
                on_demand[key] = _pricing_api_price(target, instance_type, os)
                sheet.pricing_api_types.append(instance_type)
        if instance.get("InstanceLifecycle") == "spot":
            pools = by_os.setdefault(os.platform_details, (os, set()))[1]
            pools.add(Pool(instance_type, instance.get("Placement", {}).get("AvailabilityZone", "")))
    spot = {pool: price for os, pools in by_os.values() for pool, price in _spot_prices(pools, os).items()}
    for instance_id, instance in instances.items():
        if instance_id in sheet.unpriced:
            continue
        instance_type = instance.get("InstanceType", "")
        od = on_demand[(instance_type, _operating_system(instance).platform_details)]
        if od is None:
            sheet.unpriced[instance_id] = f"no on-demand price for {instance_type} in {target.region_name}"
            continue
        if instance.get("InstanceLifecycle") == "spot":
            pool = Pool(instance_type, instance.get("Placement", {}).get("AvailabilityZone", ""))
            if pool not in spot:
                sheet.unpriced[instance_id] = f"no spot price for {pool}"
                continue
            sheet.costs[instance_id] = InstanceCost(od, spot[pool])
        else:
            sheet.costs[instance_id] = InstanceCost(od, od)
    return sheet
