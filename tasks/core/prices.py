"""Prices, as plain facts: latest spot price per pool, on-demand price from a Pricing API product or the bundled
snapshot, operating systems as each API names them, and the hourly saving of a swap."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from tasks.core.errors import UnsupportedPlatform


class Pool(NamedTuple):
    """A spot capacity pool: one instance type in one availability zone."""

    instance_type: str
    availability_zone: str

    def __str__(self) -> str:
        return f"{self.instance_type} in {self.availability_zone}"


@dataclass(frozen=True)
class OperatingSystem:
    """One OS as DescribeInstances (`PlatformDetails`), spot price history and the Pricing API spell it."""

    platform_details: str
    spot_description: str
    pricing_name: str
    snapshot_key: str

    @property
    def spot_product_descriptions(self) -> list[str]:
        """DescribeSpotPriceHistory's ProductDescriptions for this OS, EC2-Classic and VPC spellings."""
        return [self.spot_description, f"{self.spot_description} (Amazon VPC)"]


OPERATING_SYSTEMS = {
    os.platform_details: os
    for os in (
        OperatingSystem("Linux/UNIX", "Linux/UNIX", "Linux", "linux"),
        OperatingSystem("Red Hat Enterprise Linux", "Red Hat Enterprise Linux", "RHEL", "rhel"),
        OperatingSystem("SUSE Linux", "SUSE Linux", "SUSE", "suse"),
        OperatingSystem("Windows", "Windows", "Windows", "windows"),
    )
}
LINUX = OPERATING_SYSTEMS["Linux/UNIX"]


def operating_system(platform_details: str | None) -> OperatingSystem:
    """The instance's OS; an absent value is Linux/UNIX, as EC2 reports for plain Linux AMIs."""
    if not platform_details:
        return LINUX
    found = OPERATING_SYSTEMS.get(platform_details)
    if found is None:
        known = ", ".join(sorted(OPERATING_SYSTEMS))
        raise UnsupportedPlatform(f"platform {platform_details!r} has no spot price; supported: {known}")
    return found


@dataclass(frozen=True)
class SpotPoint:
    """One row of DescribeSpotPriceHistory."""

    pool: Pool
    product_description: str
    price: float
    timestamp: datetime


def latest_spot_prices(points: Iterable[SpotPoint], os: OperatingSystem) -> dict[Pool, float]:
    """The price in force per pool: the newest point for the OS (EC2-Classic's "(Amazon VPC)" variant counts too)."""
    wanted = {os.spot_description, f"{os.spot_description} (Amazon VPC)"}
    newest: dict[Pool, SpotPoint] = {}
    for point in points:
        if point.product_description not in wanted:
            continue
        seen = newest.get(point.pool)
        if seen is None or point.timestamp > seen.timestamp:
            newest[point.pool] = point
    return {pool: point.price for pool, point in newest.items()}


def on_demand_from_product(product: Mapping[str, Any]) -> float | None:
    """The hourly USD price in one Pricing API GetProducts entry (`terms.OnDemand.*.priceDimensions.*`)."""
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if dimension.get("unit") == "Hrs" and usd is not None and float(usd) > 0:
                return float(usd)
    return None


def on_demand_from_price_list(price_list: Iterable[str | Mapping[str, Any]]) -> float | None:
    """The first hourly USD price in a GetProducts `PriceList` (entries come as JSON strings)."""
    for item in price_list:
        price = on_demand_from_product(json.loads(item) if isinstance(item, str) else item)
        if price is not None:
            return price
    return None


def spot_points(rows: Iterable[Mapping[str, Any]]) -> list[SpotPoint]:
    """DescribeSpotPriceHistory rows as SpotPoints."""
    return [SpotPoint(Pool(row["InstanceType"], row["AvailabilityZone"]), row["ProductDescription"],
                      float(row["SpotPrice"]), row["Timestamp"]) for row in rows]


def snapshot_price(snapshot: Mapping[str, Any], region: str, instance_type: str, os: OperatingSystem) -> float | None:
    """The bundled offline on-demand price, or None when the snapshot does not cover it."""
    price = snapshot.get("prices", {}).get(os.snapshot_key, {}).get(region, {}).get(instance_type)
    return float(price) if price is not None else None


def hourly_saving(on_demand_price: float, spot_price: float) -> float:
    """USD per hour saved by running the spot instead of the on-demand; never negative for a valid candidate."""
    return round(on_demand_price - spot_price, 6)


def saving_percent(before: float, after: float) -> float:
    return round(100 * (before - after) / before, 1) if before > 0 else 0.0
