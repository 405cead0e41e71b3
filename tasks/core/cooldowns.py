"""Cooldowns: a spot pool that just had no capacity, was interrupted or got a rebalance recommendation is avoided
for a while, an instance just churned is not churned again, and a region whose spot quota CreateFleet reported
exceeded gets no spot launch at all for a while. An on-demand pool (a type in a zone, market on-demand) that just
had no capacity for a swap back is avoided the same way, under its own key, so it never makes a spot pool look
cold or the other way round. Keys and expiry only; the store is elsewhere."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from tasks.core.prices import Pool

COOLDOWN_SECONDS = 30 * 60
_POOL, _INSTANCE, _QUOTA, _HOOK = "pool", "instance", "quota", "hook"
# Spot quota errors in CreateFleet's Errors: the account's limit, not the pool's capacity nor a bad request.
QUOTA_CODES = frozenset({"MaxSpotInstanceCountExceeded", "VcpuLimitExceeded", "InstanceLimitExceeded",
                         "MaxSpotFleetRequestCountExceeded", "MaxFleetCountExceeded"})
SPOT, ON_DEMAND = "spot", "on-demand"  # the market a pool cools in


def pool_key(pool: Pool, market: str = SPOT) -> str:
    """`pool#<type>#<zone>` for spot (the key written before markets existed), `pool#<type>#<zone>#on-demand`."""
    key = f"{_POOL}#{pool.instance_type}#{pool.availability_zone}"
    return key if market == SPOT else f"{key}#{market}"


def instance_key(instance_id: str) -> str:
    return f"{_INSTANCE}#{instance_id}"


def quota_key(region: str) -> str:
    """The spot quota is per account and region: one key backs off every group of the region."""
    return f"{_QUOTA}#spot#{region}"


def hook_key(asg_name: str) -> str:
    """A group whose launch lifecycle hook Validate refused a swap for: the scanner leaves it alone while this
    cools, instead of asking every group it picks for its hooks (one DescribeLifecycleHooks per group per scan)."""
    return f"{_HOOK}#{asg_name}"


def hook_group_of(key: str) -> str | None:
    return key.removeprefix(f"{_HOOK}#") if key.startswith(f"{_HOOK}#") else None


def hook_skip(refusal: str, until: float) -> str:
    """Why the scanner leaves a group alone after Validate refused a swap for its launch hook (names the hook)."""
    at = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{refusal} (a swap was refused for it; one swap tries again after {at})"


def quota_region_of(key: str) -> str | None:
    parts = key.split("#")
    return parts[2] if len(parts) == 3 and parts[:2] == [_QUOTA, "spot"] else None


def quota_skip(region: str, code: str) -> str:
    """Why the scanner leaves every group of the region alone while its spot quota backs off."""
    return f"spot quota exceeded in {region} ({code}): backing off until the cooldown ends"


def pool_of(key: str, market: str = SPOT) -> Pool | None:
    """The pool a key names in `market`, or None for instance keys, the other market's pools and keys we did not
    write."""
    parts = key.split("#")
    if parts[0] != _POOL or len(parts) not in (3, 4):
        return None
    found = parts[3] if len(parts) == 4 else SPOT
    return Pool(parts[1], parts[2]) if found == market else None


def expiry(now: float, seconds: int = COOLDOWN_SECONDS) -> int:
    """Epoch seconds when the cooldown ends (DynamoDB TTL wants whole seconds)."""
    return int(now) + seconds


def cooling_pools(entries: Iterable[tuple[str, float]], now: float, market: str = SPOT) -> frozenset[Pool]:
    """Pools of `market` still cooling from (key, expires_at) entries. TTL deletes expired items only eventually
    (up to two days late), so the expiry is checked here, not trusted to be gone."""
    found = set()
    for key, expires_at in entries:
        pool = pool_of(key, market)
        if pool is not None and expires_at > now:
            found.add(pool)
    return frozenset(found)


def types_cooling_in(pools: Iterable[Pool], availability_zone: str) -> frozenset[str]:
    return frozenset(p.instance_type for p in pools if p.availability_zone == availability_zone)
