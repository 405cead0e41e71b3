"""Prices from AWS: spot from DescribeSpotPriceHistory (latest per type and zone, for the instance's OS) and
on-demand from the Pricing API, with the bundled snapshot (tasks/data/prices.json) when the Pricing API cannot
answer. On-demand prices from the Pricing API are kept by the container for a day, spot prices for
SPOT_PRICE_TTL_SECONDS."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tasks.aws.clients import client
from tasks.aws.invocation import logger
from tasks.core.errors import InvalidInput
from tasks.core.prices import (
    OperatingSystem,
    Pool,
    latest_spot_prices,
    on_demand_from_price_list,
    snapshot_price,
    spot_points,
)

PRICING_API, SNAPSHOT = "pricing-api", "snapshot"


class NoOnDemandPrice(InvalidInput):
    """Neither the Pricing API nor the snapshot knows the on-demand price: no spot price can be judged cheaper."""


@functools.cache
def snapshot() -> dict[str, Any]:
    """The bundled offline on-demand prices (read once per container: it ships with the code)."""
    prices: dict[str, Any] = json.loads(resources.files("tasks").joinpath("data/prices.json").read_text())
    return prices


def pricing_filters(region: str, instance_type: str, os: OperatingSystem) -> list[dict[str, str]]:
    """The filters that leave exactly one product: shared tenancy, no pre-installed software, license included."""
    fields = {
        "instanceType": instance_type, "regionCode": region, "operatingSystem": os.pricing_name,
        "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
        "licenseModel": "No License required",
    }
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


@dataclass(frozen=True)
class OnDemandPrice:
    price: float
    source: str  # PRICING_API or SNAPSHOT


# On-demand list prices change a few times a year: a warm container keeps what the Pricing API said for a day.
# (Snapshot answers are not kept, so a Pricing API that comes back is asked again.)
ON_DEMAND_TTL_SECONDS = 24 * 3600
_on_demand_cache: dict[tuple[str, str, str], tuple[float, OnDemandPrice]] = {}


# Spot prices move gradually (with long-term supply and demand, not bids): a warm container keeps each pool's
# price in force for five minutes, per region, OS, zone and type, so any other type, zone or OS
# is read afresh. A price that moved meanwhile is seen up to that late; EC2 still caps a spot launched without a
# MaxPrice at its type's own on-demand price. A new EC2 client (another account, or tests between mocks) reads again.
SPOT_PRICE_TTL_SECONDS = 300
_spot_cache: dict[tuple[str, str, str, str], tuple[float, float | None]] = {}  # -> (when read, price; None: none)
_spot_read_through: list[Any] = [None]
_spot_lock = threading.Lock()
_clock = time.monotonic  # tests move it


def forget_spot_prices() -> None:
    """Drop the kept spot prices (tests that move a price and want the next read to see it at once)."""
    with _spot_lock:
        _spot_cache.clear()


class PriceBook:
    """Prices for one region and OS; on-demand prices from the Pricing API are kept by the container."""

    def __init__(self, region: str, os: OperatingSystem) -> None:
        self.region, self.os = region, os

    def on_demand(self, instance_type: str) -> OnDemandPrice:
        key = (self.region, self.os.pricing_name, instance_type)
        cached = _on_demand_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < ON_DEMAND_TTL_SECONDS:
            return cached[1]
        price = self._look_up_on_demand(instance_type)
        if price.source == PRICING_API:
            _on_demand_cache[key] = (time.monotonic(), price)
        return price

    def _look_up_on_demand(self, instance_type: str) -> OnDemandPrice:
        problem = ""
        try:
            price = pricing_api_price(self.region, instance_type, self.os)
            if price is not None:
                return OnDemandPrice(price, PRICING_API)
            problem = "no matching product"
        except (ClientError, BotoCoreError) as error:  # no route, no permission, throttled: the snapshot serves
            problem = str(error)
        offline = snapshot_price(snapshot(), self.region, instance_type, self.os)
        logger.warning("on-demand price from the snapshot", extra={"instance_type": instance_type,
                                                                   "pricing_api": problem, "found": offline})
        if offline is None:
            raise NoOnDemandPrice(
                f"no on-demand price for {instance_type} ({self.os.platform_details}) in {self.region}: "
                f"Pricing API: {problem}; the snapshot of {snapshot()['as_of']} does not list it"
            )
        return OnDemandPrice(offline, SNAPSHOT)

    def spot_prices(self, instance_types: Iterable[str], availability_zone: str) -> dict[str, float]:
        """The spot price in force now per type in one zone; types without a price are absent. Types whose price
        the container read within SPOT_PRICE_TTL_SECONDS are not asked again."""
        wanted = sorted(set(instance_types))
        if not wanted:
            return {}
        ec2 = client("ec2")
        now = _clock()
        key = (self.region, self.os.spot_description, availability_zone)
        with _spot_lock:
            if _spot_read_through[0] is not ec2:
                _spot_cache.clear()
                _spot_read_through[0] = ec2
            kept = {t: hit[1] for t in wanted
                    if (hit := _spot_cache.get((*key, t))) is not None and 0 <= now - hit[0] < SPOT_PRICE_TTL_SECONDS}
        missing = [t for t in wanted if t not in kept]
        if missing:
            read = {pool.instance_type: price for pool, price in spot_prices_in_force(missing, self.os,
                                                                                       availability_zone).items()}
            found = {t: read.get(t) for t in missing}
            with _spot_lock:
                _spot_cache.update({(*key, t): (now, price) for t, price in found.items()})
            kept |= found
        return {t: price for t, price in kept.items() if price is not None}


def pricing_api_price(region: str, instance_type: str, os: OperatingSystem) -> float | None:
    """The on-demand price the Pricing API lists (one GetProducts), None when no product matches; its errors
    (no route, no permission, throttled) are the caller's to fall back from."""
    response = client("pricing").get_products(
        ServiceCode="AmazonEC2", Filters=pricing_filters(region, instance_type, os), MaxResults=10
    )
    return on_demand_from_price_list(response.get("PriceList", []))


def spot_prices_in_force(instance_types: Iterable[str], os: OperatingSystem,
                         availability_zone: str | None = None) -> dict[Pool, float]:
    """The spot price in force now per pool of these types (in one zone, or in every zone), from one paginated
    DescribeSpotPriceHistory read; pools without a price are absent."""
    filters = [{"Name": "availability-zone", "Values": [availability_zone]}] if availability_zone else []
    pages = client("ec2").get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=sorted(set(instance_types)),
        ProductDescriptions=os.spot_product_descriptions,
        **({"Filters": filters} if filters else {}),
        StartTime=datetime.now(UTC),  # from now: the one price in force per pool, not the history
    )
    points = spot_points(row for page in pages for row in page["SpotPriceHistory"])
    return {pool: price for pool, price in latest_spot_prices(points, os).items()
            if availability_zone is None or pool.availability_zone == availability_zone}


def refresh_snapshot(regions: Iterable[str], instance_types: Iterable[str], os: OperatingSystem) -> dict[str, Any]:
    """Build a new snapshot from the Pricing API (run by hand where it is reachable; write the result to
    tasks/data/prices.json). Types the API does not price in a region are left out."""
    prices: dict[str, dict[str, float]] = {}
    for region in regions:
        book = PriceBook(region, os)
        for instance_type in instance_types:
            found = book.on_demand(instance_type)
            if found.source == PRICING_API:
                prices.setdefault(region, {})[instance_type] = found.price
    return {
        "source": "AWS Pricing API GetProducts (AmazonEC2, shared tenancy, no pre-installed software)",
        "as_of": datetime.now(UTC).strftime("%Y-%m"),
        "unit": "USD per instance-hour",
        "prices": {os.snapshot_key: prices},
    }


def forget_prices() -> None:
    """Drop the cached on-demand prices (tests that change what the Pricing API answers)."""
    _on_demand_cache.clear()
