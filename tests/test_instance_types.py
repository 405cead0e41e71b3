"""Which types may replace an instance as spot: the compatibility table, ranking, and the catalog's facts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.instance_types import (
    ABOVE_ON_DEMAND,
    BEYOND_LIMIT,
    COOLING,
    INCOMPATIBLE,
    NO_PRICE,
    InstanceTypeInfo,
    choose_candidates,
    incompatibility,
    maps_instance_store,
    type_info,
)
from tasks.core.policy import Policy

X86, ARM = frozenset({"x86_64"}), frozenset({"arm64"})
M5 = InstanceTypeInfo("m5.large", X86, 2, 8192)
CATALOG = {
    t.name: t
    for t in (
        M5,
        InstanceTypeInfo("m6i.large", X86, 2, 8192),
        InstanceTypeInfo("m4.large", X86, 2, 8192, current_generation=False),
        InstanceTypeInfo("m6g.large", ARM, 2, 8192),
        InstanceTypeInfo("c5.large", X86, 2, 4096),
        InstanceTypeInfo("c5.xlarge", X86, 4, 8192),
        InstanceTypeInfo("m5.xlarge", X86, 4, 16384),
        InstanceTypeInfo("t3.large", X86, 2, 8192, burstable=True),
        InstanceTypeInfo("m5d.large", X86, 2, 8192, instance_storage_gb=75),
        InstanceTypeInfo("g4dn.xlarge", X86, 4, 16384, gpus=1, gpu_manufacturers=frozenset({"NVIDIA"}),
                         instance_storage_gb=125),
        InstanceTypeInfo("g4ad.xlarge", X86, 4, 16384, gpus=1, gpu_manufacturers=frozenset({"AMD"}),
                         instance_storage_gb=150),
        InstanceTypeInfo("m5.metal", X86, 96, 393216, bare_metal=True),
        InstanceTypeInfo("u-6tb1.metal", X86, 448, 6291456, spot=False),
    )
}
ANY = Policy()


@pytest.mark.parametrize(
    ("original", "candidate", "policy", "storage", "reason"),
    [
        ("m5.large", "m5.large", ANY, False, None),
        ("m5.large", "m6i.large", ANY, False, None),
        ("m5.large", "c5.xlarge", ANY, False, None),
        ("m5.large", "m6g.large", ANY, False, "architecture arm64, needs x86_64"),
        ("m5.large", "c5.large", ANY, False, "4096 MiB memory < 8192"),
        ("c5.xlarge", "m5.large", ANY, False, "2 vCPUs < 4"),
        ("g4dn.xlarge", "m5.xlarge", ANY, False, "0 GPUs < 1"),
        ("g4dn.xlarge", "g4ad.xlarge", ANY, False, "GPU maker AMD, needs NVIDIA"),
        ("m5.large", "m6i.large", Policy(denied_types=("m6*",)), False, "excluded by the group's AllowedTypes"),
        ("m5.large", "m6i.large", Policy(allowed_types=("c5.*",)), False, "excluded by the group's AllowedTypes"),
        ("m5.large", "m6i.large", Policy(allowed_types=("m*",), denied_types=("m6i.large",)), False,
         "excluded by the group's AllowedTypes"),
        ("m5.large", "t3.large", ANY, False, "burstable, the original is not"),
        ("m5.large", "t3.large", Policy(allowed_types=("m*", "t3.*")), False, None),
        ("t3.large", "m5.large", ANY, False, None),
        ("m5.large", "m5.large", ANY, True, "0 GB instance storage < 1"),
        ("m5.large", "m5d.large", ANY, True, None),
        ("m5d.large", "m5.large", ANY, False, "0 GB instance storage < 75"),
        ("m5.large", "m5.metal", ANY, False, "bare metal"),
        ("m5.large", "u-6tb1.metal", ANY, False, "not offered as spot"),
    ],
)
def test_compatibility_table(original: str, candidate: str, policy: Policy, storage: bool, reason: str | None) -> None:
    found = incompatibility(CATALOG[original], CATALOG[candidate], policy, needs_instance_storage=storage)
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.startswith(reason), found


def test_candidates_are_compatible_priced_within_on_demand_and_not_cooling_current_generation_first() -> None:
    prices = {"m5.large": 0.040, "m6i.large": 0.035, "m4.large": 0.020, "c5.xlarge": 0.097, "m5d.large": 0.050,
              "m6g.large": 0.010, "t3.large": 0.015}
    choice = choose_candidates(M5, CATALOG, ANY, needs_instance_storage=False, spot_prices=prices,
                               on_demand_price=0.096, cooling=frozenset({"m5d.large"}))
    assert [c.instance_type for c in choice.candidates] == ["m6i.large", "m5.large", "m4.large"]
    assert choice.candidates[0].spot_price == 0.035
    assert choice.rejected["c5.xlarge"] == (ABOVE_ON_DEMAND, "spot 0.097 > the original's on-demand 0.096")
    assert choice.rejected["m5d.large"] == (COOLING, "pool cooling down")
    assert choice.rejected["m6g.large"][0] == INCOMPATIBLE
    assert choice.rejected["g4dn.xlarge"][0] == NO_PRICE  # it would fit (bigger), but has no spot price here
    assert choice.summary() == "5 incompatible, 3 no spot price, 1 above on-demand, 1 cooling down"


def test_spot_price_equal_to_on_demand_is_still_a_candidate_and_unpriced_types_are_not() -> None:
    choice = choose_candidates(M5, {"m5.large": M5, "m6i.large": CATALOG["m6i.large"]}, ANY,
                               needs_instance_storage=False, spot_prices={"m5.large": 0.096}, on_demand_price=0.096)
    assert [c.instance_type for c in choice.candidates] == ["m5.large"]
    assert choice.rejected == {"m6i.large": (NO_PRICE, "no spot price in the zone")}


def test_only_the_best_candidates_are_offered() -> None:
    catalog = {f"m{i}.large": InstanceTypeInfo(f"m{i}.large", X86, 2, 8192) for i in range(30)}
    prices = {name: 0.01 + i / 1000 for i, name in enumerate(catalog)}
    choice = choose_candidates(M5, catalog, ANY, needs_instance_storage=False, spot_prices=prices,
                               on_demand_price=1.0, limit=5)
    assert [c.instance_type for c in choice.candidates] == [f"m{i}.large" for i in range(5)]
    assert choice.rejected["m29.large"] == (BEYOND_LIMIT, "beyond the best 5")


@given(
    st.lists(st.tuples(st.integers(1, 8), st.integers(1, 64), st.floats(0.001, 1.0), st.booleans()), max_size=25),
    st.floats(0.01, 1.0),
)
def test_every_candidate_fits_and_is_cheaper_than_on_demand(rows: list[tuple[int, int, float, bool]],
                                                            on_demand: float) -> None:
    catalog = {f"x{i}.large": InstanceTypeInfo(f"x{i}.large", X86, v, m * 1024, current_generation=g)
               for i, (v, m, _, g) in enumerate(rows)}
    prices = {f"x{i}.large": p for i, (_, _, p, _) in enumerate(rows)}
    original = InstanceTypeInfo("o.large", X86, 4, 16 * 1024)
    choice = choose_candidates(original, catalog, ANY, needs_instance_storage=False, spot_prices=prices,
                               on_demand_price=on_demand)
    for c in choice.candidates:
        assert catalog[c.instance_type].vcpus >= 4 and catalog[c.instance_type].memory_mib >= 16 * 1024
        assert c.spot_price <= on_demand
    assert len(choice.candidates) + len(choice.rejected) == len(catalog)
    keys = [(not c.current_generation, c.spot_price) for c in choice.candidates]
    assert keys == sorted(keys)


def test_type_info_reads_describe_instance_types() -> None:
    raw = {
        "InstanceType": "g4dn.xlarge", "CurrentGeneration": True, "SupportedUsageClasses": ["on-demand", "spot"],
        "BareMetal": False, "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
        "VCpuInfo": {"DefaultVCpus": 4}, "MemoryInfo": {"SizeInMiB": 16384},
        "InstanceStorageInfo": {"TotalSizeInGB": 125}, "BurstablePerformanceSupported": False,
        "GpuInfo": {"Gpus": [{"Name": "T4", "Manufacturer": "NVIDIA", "Count": 1}]},
    }
    assert type_info(raw) == CATALOG["g4dn.xlarge"]
    assert type_info({"InstanceType": "t2.micro", "ProcessorInfo": {"SupportedArchitectures": ["i386", "x86_64"]},
                      "VCpuInfo": {"DefaultVCpus": 1}, "MemoryInfo": {"SizeInMiB": 1024}}).architecture == "x86_64"


def test_instance_store_mapping_is_read_from_the_launch_template() -> None:
    assert maps_instance_store({"BlockDeviceMappings": [{"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}]})
    assert not maps_instance_store({"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}]})
    assert not maps_instance_store({})
