"""Which instance types may replace an instance as spot, and in what order to offer them to EC2.

A candidate must run the same software (architecture, GPU maker), hold at least the same resources (vCPUs,
memory, GPUs, instance storage when the workload has it) and behave alike (no burstable CPU credits for a
non-burstable original unless the group's AllowedTypes names the type). Among those, only pools whose spot
price is at most the original's on-demand price and that are not cooling down are offered; current
generation first, then cheapest.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# CreateFleet takes up to 300 overrides; price-capacity-optimized needs a dozen or so pools to diversify, and a
# short list keeps the request and the logs readable.
MAX_OVERRIDES = 20
# Architectures in order of preference when a type supports several (t2 lists i386 and x86_64).
_ARCHITECTURES = ("arm64", "x86_64", "x86_64_mac", "arm64_mac", "i386")


@dataclass(frozen=True)
class InstanceTypeInfo:
    """What DescribeInstanceTypes says about one type, reduced to what compatibility needs."""

    name: str
    architectures: frozenset[str]
    vcpus: int
    memory_mib: int
    gpus: int = 0
    gpu_manufacturers: frozenset[str] = frozenset()
    instance_storage_gb: int = 0
    burstable: bool = False
    current_generation: bool = True
    spot: bool = True
    bare_metal: bool = False

    @property
    def architecture(self) -> str:
        """The architecture an AMI for this type is built for."""
        return next((a for a in _ARCHITECTURES if a in self.architectures), min(self.architectures, default=""))


def type_info(raw: Mapping[str, Any]) -> InstanceTypeInfo:
    """One DescribeInstanceTypes entry as facts."""
    gpus = raw.get("GpuInfo", {}).get("Gpus", [])
    return InstanceTypeInfo(
        name=raw["InstanceType"],
        architectures=frozenset(raw.get("ProcessorInfo", {}).get("SupportedArchitectures", [])),
        vcpus=int(raw.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
        memory_mib=int(raw.get("MemoryInfo", {}).get("SizeInMiB", 0)),
        gpus=sum(int(g.get("Count", 0)) for g in gpus),
        gpu_manufacturers=frozenset(g["Manufacturer"] for g in gpus if g.get("Manufacturer")),
        instance_storage_gb=int(raw.get("InstanceStorageInfo", {}).get("TotalSizeInGB", 0)),
        burstable=bool(raw.get("BurstablePerformanceSupported", False)),
        current_generation=bool(raw.get("CurrentGeneration", False)),
        spot="spot" in raw.get("SupportedUsageClasses", []),
        bare_metal=bool(raw.get("BareMetal", False)),
    )


def maps_instance_store(launch_template_data: Mapping[str, Any]) -> bool:
    """True when the launch template maps instance-store volumes (`VirtualName: ephemeralN`)."""
    return any(
        str(m.get("VirtualName", "")).startswith("ephemeral")
        for m in launch_template_data.get("BlockDeviceMappings", [])
    )


class TypePolicy(Protocol):
    """The group's type globs (tasks.core.policy.Policy fits)."""

    @property
    def allowed_types(self) -> tuple[str, ...]: ...

    def allows_type(self, instance_type: str) -> bool: ...


def incompatibility(
    original: InstanceTypeInfo, candidate: InstanceTypeInfo, policy: TypePolicy, *, needs_instance_storage: bool
) -> str | None:
    """Why `candidate` may not replace `original`, or None when it may. The first reason found is given."""
    if not policy.allows_type(candidate.name):
        return "excluded by the group's AllowedTypes/DeniedTypes"
    if not candidate.spot:
        return "not offered as spot"
    if original.architecture not in candidate.architectures:
        return f"architecture {','.join(sorted(candidate.architectures))}, needs {original.architecture}"
    if candidate.vcpus < original.vcpus:
        return f"{candidate.vcpus} vCPUs < {original.vcpus}"
    if candidate.memory_mib < original.memory_mib:
        return f"{candidate.memory_mib} MiB memory < {original.memory_mib}"
    if candidate.gpus < original.gpus:
        return f"{candidate.gpus} GPUs < {original.gpus}"
    if original.gpus and not original.gpu_manufacturers <= candidate.gpu_manufacturers:
        return f"GPU maker {','.join(sorted(candidate.gpu_manufacturers)) or 'none'}, needs " + ",".join(
            sorted(original.gpu_manufacturers)
        )
    wanted_storage = max(original.instance_storage_gb, 1) if needs_instance_storage else original.instance_storage_gb
    if candidate.instance_storage_gb < wanted_storage:
        return f"{candidate.instance_storage_gb} GB instance storage < {wanted_storage}"
    if candidate.burstable and not original.burstable and not _named_by(policy.allowed_types, candidate.name):
        return "burstable, the original is not (name it in AllowedTypes to allow)"
    if candidate.bare_metal and not original.bare_metal:
        return "bare metal"
    return None


def _named_by(globs: tuple[str, ...], instance_type: str) -> bool:
    return any(fnmatch.fnmatchcase(instance_type, g) for g in globs)


@dataclass(frozen=True)
class Candidate:
    instance_type: str
    spot_price: float
    current_generation: bool


INCOMPATIBLE, NO_PRICE, ABOVE_ON_DEMAND, COOLING, BEYOND_LIMIT = (
    "incompatible", "no spot price", "above on-demand", "cooling down", "beyond the best",
)


@dataclass(frozen=True)
class CandidateChoice:
    """Candidates best first (at most MAX_OVERRIDES) and, for the log, why each other type was left out."""

    candidates: tuple[Candidate, ...]
    rejected: dict[str, tuple[str, str]]  # type -> (kind, detail)

    def summary(self) -> str:
        """`3 cooling down, 1390 incompatible`: how many types were left out, by kind."""
        counts: dict[str, int] = {}
        for kind, _ in self.rejected.values():
            counts[kind] = counts.get(kind, 0) + 1
        return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def choose_candidates(
    original: InstanceTypeInfo,
    catalog: Mapping[str, InstanceTypeInfo],
    policy: TypePolicy,
    *,
    needs_instance_storage: bool,
    spot_prices: Mapping[str, float],
    on_demand_price: float,
    cooling: frozenset[str] = frozenset(),
    limit: int = MAX_OVERRIDES,
) -> CandidateChoice:
    """Compatible types whose spot price in the zone is at most `on_demand_price` (the original's), not cooling.

    `spot_prices` and `cooling` are for the one zone the replacement goes to, keyed by type.
    """
    kept: list[Candidate] = []
    rejected: dict[str, tuple[str, str]] = {}
    for name, info in catalog.items():
        why = incompatibility(original, info, policy, needs_instance_storage=needs_instance_storage)
        price = spot_prices.get(name)
        if why is not None:
            rejected[name] = (INCOMPATIBLE, why)
        elif price is None:
            rejected[name] = (NO_PRICE, "no spot price in the zone")
        elif price > on_demand_price:
            rejected[name] = (ABOVE_ON_DEMAND, f"spot {price:g} > the original's on-demand {on_demand_price:g}")
        elif name in cooling:
            rejected[name] = (COOLING, "pool cooling down")
        else:
            kept.append(Candidate(name, price, info.current_generation))
    kept.sort(key=lambda c: (not c.current_generation, c.spot_price, c.instance_type))
    for dropped in kept[limit:]:
        rejected[dropped.instance_type] = (BEYOND_LIMIT, f"beyond the best {limit}")
    return CandidateChoice(candidates=tuple(kept[:limit]), rejected=rejected)
