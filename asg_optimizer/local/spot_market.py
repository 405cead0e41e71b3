"""A spot market for the embedded AWS: a price and spare capacity per pool (type x AZ), both settable.

moto prices every spot pool at a constant $0.00001 with a 2006 timestamp and ignores the allocation strategy,
capacity, MaxPrice and ClientToken of CreateFleet. This model supplies what the optimizer reads and decides on:

- Prices: per pool and operating system (spot prices differ per OS, as EC2 publishes them per product
  description). By default a pool costs 30-65 % of the type's on-demand price for that OS from the bundled
  snapshot (a fixed, per-pool figure, so runs are repeatable); a type or OS the snapshot does not list (RHEL,
  SUSE, SQL Server) has no spot market here unless `set_price` gives it one. Each pool has two history points
  (the older one 10 % dearer), so "latest per pool" is really exercised; `set_price` adds a newer point.
- MaxPrice: an override without one is capped at the type's on-demand price for the OS, as EC2 does.
- Spot quota: `spot_vcpu_quota` (vCPUs of running spot instances in the region, None: unlimited). A launch
  beyond it fails every override with MaxSpotInstanceCountExceeded, as EC2 reports the spot quota.
- Capacity: `capacity[(type, az)]` spare instances (absent: plenty). The same dict limits RunInstances spot.
- Allocation (CreateFleet): a pool is viable with spare capacity for the request and a price at most its
  MaxPrice. `price-capacity-optimized` takes the deepest viable pools (spare capacity, counted up to DEEP) and
  then the cheapest of those; `capacity-optimized` the deepest; `lowest-price` the cheapest.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.aws.prices import snapshot
from tasks.core.prices import LINUX, OPERATING_SYSTEMS, Pool, snapshot_price

DEEP = 10
ZONE_SUFFIXES = "abcdef"
NOT_OFFERED, NO_CAPACITY, PRICE_TOO_LOW = "Unsupported", "InsufficientInstanceCapacity", "SpotMaxPriceTooLow"
QUOTA_EXCEEDED = "MaxSpotInstanceCountExceeded"


@dataclass(frozen=True)
class Offer:
    """One CreateFleet override as the market sees it."""

    pool: Pool
    max_price: float | None  # None: no MaxPrice in the request (EC2 caps at the on-demand price)
    index: int  # position in the request, for the tie-break AWS would not promise
    platform: str = LINUX.platform_details  # the AMI's PlatformDetails
    vcpus: int = 0  # counted against the spot quota


@dataclass(frozen=True)
class Refusal:
    offer: Offer
    code: str
    message: str


@dataclass
class SpotMarket:
    region: str = "us-east-1"
    capacity: dict[tuple[str, str], int] = field(default_factory=dict)
    prices: dict[tuple[Pool, str], float] = field(default_factory=dict)  # (pool, PlatformDetails) -> USD/h
    opened: datetime = field(default_factory=lambda: datetime.now(UTC))
    spot_vcpu_quota: int | None = None
    # Called with (pool, platform, new price) after set_price: EC2 interrupts spots whose max price it passes.
    listeners: list[Callable[[Pool, str, float], None]] = field(default_factory=list)
    _points: list[tuple[datetime, Pool, float, str]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- prices -------------------------------------------------------------------------------------------------
    def on_demand_price(self, pool: Pool, platform: str = LINUX.platform_details) -> float | None:
        """The snapshot's on-demand price: the spot price's ceiling when a request names no MaxPrice."""
        os = OPERATING_SYSTEMS.get(platform)
        region = pool.availability_zone[:-1] or self.region  # the pool's own region (local serve has several)
        return None if os is None else snapshot_price(snapshot(), region, pool.instance_type, os)

    def default_price(self, pool: Pool, platform: str = LINUX.platform_details) -> float | None:
        on_demand = self.on_demand_price(pool, platform)
        if on_demand is None:
            return None
        digest = hashlib.sha256(f"{pool.instance_type}|{pool.availability_zone}".encode()).digest()
        share = 0.30 + 0.35 * (digest[0] / 255)
        return round(on_demand * share, 4)

    def price(self, instance_type: str, availability_zone: str,
              platform: str = LINUX.platform_details) -> float | None:
        key = (Pool(instance_type, availability_zone), platform)
        with self._lock:
            return self.prices[key] if key in self.prices else self.default_price(*key)

    def set_price(self, instance_type: str, availability_zone: str, price: float,
                  platform: str = LINUX.platform_details) -> None:
        """A new price for the pool and OS from now on (a new, newest history point)."""
        pool = Pool(instance_type, availability_zone)
        with self._lock:
            self.prices[(pool, platform)] = price
            self._points.append((datetime.now(UTC), pool, price, platform))
        for listener in list(self.listeners):
            listener(pool, platform, price)

    def set_capacity(self, instance_type: str, availability_zone: str, spare: int | None) -> None:
        """Spare spot instances in the pool; None: plenty."""
        with self._lock:
            if spare is None:
                self.capacity.pop((instance_type, availability_zone), None)
            else:
                self.capacity[(instance_type, availability_zone)] = spare

    def zones(self) -> list[str]:
        return [f"{self.region}{s}" for s in ZONE_SUFFIXES]

    def history(self, instance_types: list[str], zones: list[str], start: datetime | None,
                end: datetime | None, platforms: list[str] | None = None) -> list[tuple[datetime, Pool, float, str]]:
        """Points newest first, as DescribeSpotPriceHistory returns them: those between start and end, plus the
        one in force at start (so start = now gives the current price of every pool), per platform asked."""
        types = instance_types or sorted(snapshot()["prices"]["linux"].get(self.region, {}))
        rows: list[tuple[datetime, Pool, float, str]] = []
        for platform in platforms or sorted(OPERATING_SYSTEMS):
            for zone in zones or self.zones():
                for instance_type in types:
                    points = self._pool_points(Pool(instance_type, zone), platform)
                    before = [p for p in points if start is not None and p[0] <= start]
                    inside = [p for p in points if (start is None or p[0] > start) and (end is None or p[0] <= end)]
                    rows += inside + before[-1:]
        return sorted(rows, key=lambda p: p[0], reverse=True)

    def _pool_points(self, pool: Pool, platform: str) -> list[tuple[datetime, Pool, float, str]]:
        """The pool's points for one OS, oldest first: two default ones, then each set_price."""
        base = self.default_price(pool, platform)
        with self._lock:
            explicit = [p for p in self._points if p[1] == pool and p[3] == platform]
        if base is None and not explicit:
            return []
        defaults = [] if base is None else [
            (self.opened - timedelta(hours=3), pool, round(base * 1.1, 4), platform),
            (self.opened - timedelta(hours=1), pool, base, platform),
        ]
        return defaults + explicit

    # --- allocation ---------------------------------------------------------------------------------------------
    def _depth(self, pool: Pool) -> int:
        spare = self.capacity.get((pool.instance_type, pool.availability_zone))
        return DEEP if spare is None else min(spare, DEEP)

    def ceiling(self, offer: Offer) -> float:
        """The most EC2 will pay for the offer: its MaxPrice, or else the type's on-demand price for the OS."""
        if offer.max_price is not None:
            return offer.max_price
        on_demand = self.on_demand_price(offer.pool, offer.platform)
        return math.inf if on_demand is None else on_demand

    def allocate(self, offers: list[Offer], strategy: str, count: int,
                 spot_vcpus_running: int = 0) -> tuple[Offer | None, list[Refusal]]:
        """The pool EC2 would launch `count` instances in, taking the capacity, or None and why each failed."""
        with self._lock:
            refusals: list[Refusal] = []
            viable: list[tuple[Offer, float]] = []
            for offer in offers:
                price = self.price(*offer.pool, offer.platform)
                spare = self.capacity.get((offer.pool.instance_type, offer.pool.availability_zone))
                quota = self.spot_vcpu_quota
                if quota is not None and spot_vcpus_running + offer.vcpus * count > quota:
                    refusals.append(Refusal(offer, QUOTA_EXCEEDED, "Max spot instance count exceeded"))
                elif price is None:
                    refusals.append(Refusal(offer, NOT_OFFERED,
                                            f"{offer.pool} is not offered as spot for {offer.platform}."))
                elif spare is not None and spare < count:
                    refusals.append(Refusal(offer, NO_CAPACITY,
                                            "There is no Spot capacity available that matches your request."))
                elif price > self.ceiling(offer):
                    refusals.append(Refusal(offer, PRICE_TOO_LOW, (
                        f"Your Spot request price of {self.ceiling(offer):g} is lower than the minimum required "
                        f"Spot request fulfillment price of {price:g}.")))
                else:
                    viable.append((offer, price))
            if not viable:
                return None, refusals
            chosen = min(viable, key=lambda v: self._rank(v[0], v[1], strategy))[0]
            key = (chosen.pool.instance_type, chosen.pool.availability_zone)
            if key in self.capacity:
                self.capacity[key] -= count
            return chosen, []

    def _rank(self, offer: Offer, price: float, strategy: str) -> tuple[float, ...]:
        if strategy == "price-capacity-optimized":
            return (-self._depth(offer.pool), price, offer.index)
        if strategy in ("capacity-optimized", "capacity-optimized-prioritized"):
            return (-self._depth(offer.pool), offer.index)
        if strategy in ("lowest-price", "lowestPrice"):
            return (price, offer.index)
        return (offer.index,)


def max_price(override: dict[str, Any], spot_options: dict[str, Any]) -> float | None:
    """The request's own price limit, or None when it names none."""
    raw = override.get("MaxPrice") or spot_options.get("MaxTotalPrice")
    return float(raw) if raw else None
