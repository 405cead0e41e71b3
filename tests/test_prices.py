"""Prices: latest spot per pool, on-demand from the Pricing API with the offline fallback, the snapshot itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.pricing_api import product_entry
from tasks.aws.clients import client, reset_clients
from tasks.aws.prices import (
    PRICING_API,
    SNAPSHOT,
    NoOnDemandPrice,
    PriceBook,
    forget_prices,
    forget_spot_prices,
    pricing_filters,
    snapshot,
)
from tasks.core.cooldowns import ON_DEMAND, SPOT, cooling_pools, instance_key, pool_key, pool_of, types_cooling_in
from tasks.core.prices import (
    LINUX,
    OPERATING_SYSTEMS,
    Pool,
    SpotPoint,
    UnsupportedPlatform,
    hourly_saving,
    latest_spot_prices,
    on_demand_from_product,
    operating_system,
    saving_percent,
    snapshot_price,
)

T0 = datetime(2026, 11, 26, 12, tzinfo=UTC)
A, B = "us-east-1a", "us-east-1b"


def test_latest_point_per_pool_wins_and_other_os_is_ignored() -> None:
    points = [
        SpotPoint(Pool("m5.large", A), "Linux/UNIX", 0.050, T0),
        SpotPoint(Pool("m5.large", A), "Linux/UNIX", 0.040, T0 + timedelta(hours=1)),
        SpotPoint(Pool("m5.large", A), "Linux/UNIX (Amazon VPC)", 0.045, T0 + timedelta(minutes=30)),
        SpotPoint(Pool("m5.large", B), "Linux/UNIX (Amazon VPC)", 0.060, T0),
        SpotPoint(Pool("m5.large", B), "Windows", 0.010, T0 + timedelta(hours=2)),
    ]
    assert latest_spot_prices(points, LINUX) == {Pool("m5.large", A): 0.040, Pool("m5.large", B): 0.060}
    assert latest_spot_prices(points, OPERATING_SYSTEMS["Windows"]) == {Pool("m5.large", B): 0.010}


def test_operating_system_from_platform_details() -> None:
    assert operating_system(None) is LINUX
    assert operating_system("Windows").pricing_name == "Windows"
    assert operating_system("Red Hat Enterprise Linux").spot_description == "Red Hat Enterprise Linux"
    with pytest.raises(UnsupportedPlatform, match="platform 'Windows with SQL Server Standard' has no spot price"):
        operating_system("Windows with SQL Server Standard")


def test_on_demand_price_is_read_from_a_pricing_api_product() -> None:
    product = json.loads(product_entry("us-east-1", "m5.large", "Linux", 0.096))
    assert on_demand_from_product(product) == 0.096
    assert on_demand_from_product({"terms": {"OnDemand": {}}}) is None


def test_saving_and_percent() -> None:
    assert hourly_saving(0.096, 0.0366) == 0.0594
    assert saving_percent(1.0, 0.35) == 65.0
    assert saving_percent(0.0, 0.0) == 0.0


def test_snapshot_covers_common_families_in_several_regions_with_a_source_and_date() -> None:
    data = snapshot()
    assert data["source"] and data["as_of"]
    regions = data["prices"]["linux"]
    assert {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1"} <= set(regions)
    for family in ("m5", "m6i", "m7i", "c6i", "r6i", "m6g", "c7g", "t3"):
        assert snapshot_price(data, "us-east-1", f"{family}.large", LINUX) is not None, family
    assert snapshot_price(data, "us-east-1", "m5.large", LINUX) == 0.096
    assert snapshot_price(data, "eu-west-1", "m5.large", LINUX) == 0.107
    windows = OPERATING_SYSTEMS["Windows"]
    assert snapshot_price(data, "us-east-1", "m5.large", windows) == 0.188  # AWS's published Windows price
    assert snapshot_price(data, "us-east-1", "m6g.large", windows) is None  # no Windows on Graviton
    assert snapshot_price(data, "us-east-1", "m5.large", OPERATING_SYSTEMS["Red Hat Enterprise Linux"]) is None
    assert all(0 < p < 10 for prices in regions.values() for p in prices.values())


@pytest.fixture
def stubbed_pricing():  # type: ignore[no-untyped-def]
    reset_clients()
    forget_prices()  # on-demand prices are kept by the container; each test asks afresh
    pricing = client("pricing")
    with Stubber(pricing) as stub:
        yield stub
    reset_clients()
    forget_prices()


def test_on_demand_comes_from_the_pricing_api_and_is_cached(stubbed_pricing: Stubber) -> None:
    expected = {"ServiceCode": "AmazonEC2", "Filters": pricing_filters("eu-west-1", "m5.large", LINUX),
                "MaxResults": 10}
    stubbed_pricing.add_response("get_products", {"PriceList": [product_entry("eu-west-1", "m5.large", "Linux",
                                                                               0.111)]}, expected)
    book = PriceBook("eu-west-1", LINUX)
    assert book.on_demand("m5.large").price == 0.111 and book.on_demand("m5.large").source == PRICING_API
    stubbed_pricing.assert_no_pending_responses()  # the second lookup was served from the cache


def test_pricing_api_failure_falls_back_to_the_snapshot(stubbed_pricing: Stubber) -> None:
    stubbed_pricing.add_client_error("get_products", "AccessDeniedException", "not authorized")
    found = PriceBook("eu-west-1", LINUX).on_demand("m5.large")
    assert (found.price, found.source) == (0.107, SNAPSHOT)


def test_no_price_anywhere_is_one_clear_error(stubbed_pricing: Stubber) -> None:
    stubbed_pricing.add_response("get_products", {"PriceList": []})
    with pytest.raises(NoOnDemandPrice, match=r"no on-demand price for x9.huge \(Linux/UNIX\) in us-east-1: "
                                              r"Pricing API: no matching product; the snapshot of .* does not list it"):
        PriceBook("us-east-1", LINUX).on_demand("x9.huge")


def test_embedded_market_prices_pools_and_pricing_api(aws: EmbeddedAws) -> None:
    forget_prices()
    book = PriceBook("us-east-1", LINUX)
    assert book.on_demand("m5.large").source == PRICING_API  # answered by the embedded Pricing API
    prices = book.spot_prices(["m5.large", "m6i.large", "not-a.type"], A)
    assert set(prices) == {"m5.large", "m6i.large"}
    assert prices["m5.large"] == aws.ec2_model.market.price("m5.large", A)
    assert 0.3 * 0.096 <= prices["m5.large"] <= 0.65 * 0.096
    aws.ec2_model.market.set_price("m5.large", A, 0.0123)
    forget_spot_prices()  # a warm container sees the move within SPOT_PRICE_TTL_SECONDS
    assert PriceBook("us-east-1", LINUX).spot_prices(["m5.large"], A) == {"m5.large": 0.0123}
    history = aws.client("ec2").describe_spot_price_history(InstanceTypes=["m5.large"],
                                                            Filters=[{"Name": "availability-zone", "Values": [A]}])
    assert float(history["SpotPriceHistory"][0]["SpotPrice"]) == 0.0123
    by_os = [row["ProductDescription"] for row in history["SpotPriceHistory"]]
    assert by_os.count("Linux/UNIX") == 3  # two default points and the one just set, newest first
    assert by_os.count("Windows") == 2  # every OS the market prices, when no product description is asked
    aws.pricing_api.available = False
    assert PriceBook("us-east-1", LINUX).on_demand("m5.large").source == PRICING_API  # kept by the container
    forget_prices()
    assert PriceBook("us-east-1", LINUX).on_demand("m5.large").source == SNAPSHOT


def test_cooldown_keys_and_expiry() -> None:
    pool = Pool("m5.large", A)
    assert pool_of(pool_key(pool)) == pool
    assert pool_of(instance_key("i-0123")) is None
    entries = [(pool_key(pool), 200.0), (pool_key(Pool("c5.large", B)), 99.0), (instance_key("i-1"), 500.0)]
    assert cooling_pools(entries, now=100.0) == {pool}
    assert types_cooling_in({pool, Pool("c5.large", B)}, A) == {"m5.large"}


def test_on_demand_pool_cools_under_its_own_key_never_as_a_spot_pool() -> None:
    pool = Pool("m5.large", A)
    assert pool_key(pool) == pool_key(pool, SPOT) == "pool#m5.large#us-east-1a"  # spot keys as written before
    assert pool_key(pool, ON_DEMAND) == "pool#m5.large#us-east-1a#on-demand"
    assert pool_of(pool_key(pool, ON_DEMAND), ON_DEMAND) == pool and pool_of(pool_key(pool, ON_DEMAND)) is None
    assert pool_of(pool_key(pool), ON_DEMAND) is None
    entries = [(pool_key(pool, ON_DEMAND), 200.0), (pool_key(Pool("c5.large", B)), 200.0)]
    assert cooling_pools(entries, now=100.0, market=ON_DEMAND) == {pool}
    assert cooling_pools(entries, now=100.0) == {Pool("c5.large", B)}
    assert cooling_pools(entries, now=200.0, market=ON_DEMAND) == frozenset()  # expired, TTL or not


def test_spot_prices_are_kept_per_zone_os_and_type_for_the_ttl(aws: EmbeddedAws,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm container asks DescribeSpotPriceHistory once per zone, OS and type every SPOT_PRICE_TTL_SECONDS; a
    zone, OS or type it has not read is asked (only what is missing), never served another's price."""
    from tasks.aws import prices
    from tests.test_scan import counted_calls

    now = [1000.0]
    monkeypatch.setattr(prices, "_clock", lambda: now[0])
    market, windows = aws.ec2_model.market, OPERATING_SYSTEMS["Windows"]
    with counted_calls() as calls:
        first = PriceBook("us-east-1", LINUX).spot_prices(["m5.large", "m6i.large"], A)
        market.set_price("m5.large", A, 0.0123)
        now[0] += prices.SPOT_PRICE_TTL_SECONDS - 1
        assert PriceBook("us-east-1", LINUX).spot_prices(["m6i.large", "m5.large"], A) == first  # kept
        assert calls["ec2.DescribeSpotPriceHistory"] == 1
        assert PriceBook("us-east-1", LINUX).spot_prices(["m5.large"], B) == {"m5.large": market.price("m5.large", B)}
        assert PriceBook("us-east-1", windows).spot_prices(["m5.large"], A) == {
            "m5.large": market.price("m5.large", A, windows.platform_details)}
        both = PriceBook("us-east-1", LINUX).spot_prices(["m5.large", "c5.large", "x9.none"], A)
        assert both == {"m5.large": first["m5.large"], "c5.large": market.price("c5.large", A)}
        assert calls["ec2.DescribeSpotPriceHistory"] == 4  # zone b, Windows, then c5.large and x9.none only
        assert PriceBook("us-east-1", LINUX).spot_prices(["x9.none"], A) == {}  # no price is kept too
        now[0] += 2
        assert PriceBook("us-east-1", LINUX).spot_prices(["m5.large"], A) == {"m5.large": 0.0123}  # TTL over
        assert calls["ec2.DescribeSpotPriceHistory"] == 5
