"""A spot market for the embedded AWS: a price and spare capacity per pool (type x AZ), both settable.

moto prices every spot pool at a constant $0.00001 with a 2006 timestamp and ignores the allocation strategy,
capacity, MaxPrice and ClientToken of CreateFleet. This model supplies what the optimizer reads and decides on:

- Prices: by default a pool costs 30-65 % of the type's on-demand price from the bundled snapshot (a fixed,
  per-pool figure, so runs are repeatable); types the snapshot does not list have no spot market here. Each pool
  has two history points (the older one 10 % dearer), so "latest per pool" is really exercised; `set_price`
  adds a newer point.
- Capacity: `capacity[(type, az)]` spare instances (absent: plenty). The same dict limits RunInstances spot.
- Allocation (CreateFleet): a pool is viable with spare capacity for the request and a price at most its
  MaxPrice. `price-capacity-optimized` takes the deepest viable pools (spare capacity, counted up to DEEP) and
  then the cheapest of those; `capacity-optimized` the deepest; `lowest-price` the cheapest.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.aws.prices import snapshot
from tasks.core.prices import LINUX, Pool, snapshot_price

DEEP = 10
ZONE_SUFFIXES = "abcdef"
NOT_OFFERED, NO_CAPACITY, PRICE_TOO_LOW = "Unsupported", "InsufficientInstanceCapacity", "SpotMaxPriceTooLow"


@dataclass(frozen=True)
class Offer:
    """One CreateFleet override as the market sees it."""

    pool: Pool
    max_price: float
    index: int  # position in the request, for the tie-break AWS would not promise


@dataclass(frozen=True)
class Refusal:
    offer: Offer
    code: str
    message: str


@dataclass
class SpotMarket:
    region: str = "us-east-1"
    capacity: dict[tuple[str, str], int] = field(default_factory=dict)
    prices: dict[Pool, float] = field(default_factory=dict)
    opened: datetime = field(default_factory=lambda: datetime.now(UTC))
    _points: list[tuple[datetime, Pool, float]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- prices -------------------------------------------------------------------------------------------------
    def default_price(self, pool: Pool) -> float | None:
        on_demand = snapshot_price(snapshot(), self.region, pool.instance_type, LINUX)
        if on_demand is None:
            return None
        digest = hashlib.sha256(f"{pool.instance_type}|{pool.availability_zone}".encode()).digest()
        share = 0.30 + 0.35 * (digest[0] / 255)
        return round(on_demand * share, 4)

    def price(self, instance_type: str, availability_zone: str) -> float | None:
        pool = Pool(instance_type, availability_zone)
        with self._lock:
            return self.prices[pool] if pool in self.prices else self.default_price(pool)

    def set_price(self, instance_type: str, availability_zone: str, price: float) -> None:
        """A new price for the pool from now on (a new, newest history point)."""
        pool = Pool(instance_type, availability_zone)
        with self._lock:
            self.prices[pool] = price
            self._points.append((datetime.now(UTC), pool, price))

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
                end: datetime | None) -> list[tuple[datetime, Pool, float]]:
        """Points newest first, as DescribeSpotPriceHistory returns them: those between start and end, plus the
        one in force at start (so start = now gives the current price of every pool)."""
        types = instance_types or sorted(snapshot()["prices"]["linux"].get(self.region, {}))
        rows: list[tuple[datetime, Pool, float]] = []
        for zone in zones or self.zones():
            for instance_type in types:
                points = self._pool_points(Pool(instance_type, zone))
                before = [p for p in points if start is not None and p[0] <= start]
                inside = [p for p in points if (start is None or p[0] > start) and (end is None or p[0] <= end)]
                rows += inside + before[-1:]
        return sorted(rows, key=lambda p: p[0], reverse=True)

    def _pool_points(self, pool: Pool) -> list[tuple[datetime, Pool, float]]:
        """The pool's points, oldest first: two default ones, then each set_price."""
        base = self.default_price(pool)
        with self._lock:
            explicit = [p for p in self._points if p[1] == pool]
        if base is None and not explicit:
            return []
        defaults = [] if base is None else [
            (self.opened - timedelta(hours=3), pool, round(base * 1.1, 4)),
            (self.opened - timedelta(hours=1), pool, base),
        ]
        return defaults + explicit

    # --- allocation ---------------------------------------------------------------------------------------------
    def _depth(self, pool: Pool) -> int:
        spare = self.capacity.get((pool.instance_type, pool.availability_zone))
        return DEEP if spare is None else min(spare, DEEP)

    def allocate(self, offers: list[Offer], strategy: str, count: int) -> tuple[Offer | None, list[Refusal]]:
        """The pool EC2 would launch `count` instances in, taking the capacity, or None and why each failed."""
        with self._lock:
            refusals: list[Refusal] = []
            viable: list[tuple[Offer, float]] = []
            for offer in offers:
                price = self.price(*offer.pool)
                spare = self.capacity.get((offer.pool.instance_type, offer.pool.availability_zone))
                if price is None:
                    refusals.append(Refusal(offer, NOT_OFFERED, f"{offer.pool} is not offered as spot."))
                elif spare is not None and spare < count:
                    refusals.append(Refusal(offer, NO_CAPACITY,
                                            "There is no Spot capacity available that matches your request."))
                elif price > offer.max_price:
                    refusals.append(Refusal(offer, PRICE_TOO_LOW, (
                        f"Your Spot request price of {offer.max_price:g} is lower than the minimum required Spot "
                        f"request fulfillment price of {price:g}.")))
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


def max_price(override: dict[str, Any], spot_options: dict[str, Any]) -> float:
    raw = override.get("MaxPrice") or spot_options.get("MaxTotalPrice")
    return float(raw) if raw else math.inf
