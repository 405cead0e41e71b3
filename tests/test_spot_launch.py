"""LaunchSpot on the embedded spot market: only candidates are offered, prices and saving are recorded, no
capacity is an outcome (nothing launched, pools cooling), and cooling pools are avoided."""

from __future__ import annotations

import json
import time

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.metrics_sink import metric_values
from asg_optimizer.local.spot_market import Offer, SpotMarket
from tasks.core.prices import Pool
from tests.conftest import FAST
from tests.workflow_helpers import cooling, launched_by, refusal, settings, spot_fleet_request, state_of, states_entered

ALLOWED = {"AsgOptimiser:AllowedTypes": "m5.large,m6i.large,m7i.large,c5.large"}



def swap(aws: EmbeddedAws, asg: str, instance_id: str, later: int = 0) -> tuple[str, dict]:
    """`later` seconds on the name's stamp: a second swap of one instance within a second needs its own name."""
    from datetime import UTC, datetime, timedelta

    from tasks.core.naming import execution_name

    name = execution_name(asg, instance_id, datetime.now(UTC) + timedelta(seconds=later))
    arn = aws.start_swap(asg, instance_id, timing=FAST, name=name)
    return arn, aws.wait(arn)


def test_launch_offers_only_candidates_and_records_prices_and_saving(aws: EmbeddedAws, make_group, capsys) -> None:
    raw = make_group("web", desired=2, max_size=4, extra_tags=ALLOWED)
    on_demand = raw["Instances"][0]
    zone = on_demand["AvailabilityZone"]
    market = aws.ec2_model.market
    market.set_price("m6i.large", zone, 0.0301)
    market.set_price("m5.large", zone, 0.0402)
    market.set_price("m7i.large", zone, 0.2)  # above m5.large's on-demand 0.096: never offered
    arn, described = swap(aws, "web", on_demand["InstanceId"])

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert "Launched" in states_entered(aws, arn)
    spot = json.loads(described["output"])["spot"]
    assert spot["outcome"] == "launched"
    assert spot["candidate_types"] == ["m6i.large", "m5.large"]  # c5.large has 4 GiB; m5 is previous-gen in moto
    assert (spot["spot_instance_type"], spot["spot_price"], spot["on_demand_price"]) == ("m6i.large", 0.0301, 0.096)
    assert spot["on_demand_price_source"] == "pricing-api"
    assert spot["hourly_saving"] == 0.0659
    launched = launched_by(aws, described["name"])
    assert [(i["InstanceType"], i["InstanceLifecycle"], i["Placement"]["AvailabilityZone"]) for i in launched] == [
        ("m6i.large", "spot", zone)]
    assert launched[0]["SubnetId"] == on_demand.get("SubnetId", launched[0]["SubnetId"])
    assert metric_values("HourlySavingUSD") == [({"AutoScalingGroup": "web", "service": "asg-optimizer"}, [0.0659])]
    assert '"_aws"' not in capsys.readouterr().out  # metrics go to the embedded AWS's sink, not stdout


def test_no_capacity_ends_succeeded_launches_nothing_and_cools_the_pools(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=4, extra_tags=ALLOWED)
    on_demand = raw["Instances"][0]
    zone = on_demand["AvailabilityZone"]
    for instance_type in ("m5.large", "m6i.large", "m7i.large"):
        aws.ec2_model.market.set_capacity(instance_type, zone, 0)
    before = settings(aws, "web")
    arn, described = swap(aws, "web", on_demand["InstanceId"])

    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert states_entered(aws, arn)[-3:] == ["LaunchSpot", "Launched", "NoCapacity"]
    output = json.loads(described["output"])
    assert output["outcome"] == "no-capacity"
    assert output["why"] == "no spot capacity in 3 candidate pool(s)"
    assert launched_by(aws, described["name"]) == []
    assert state_of(aws, on_demand["InstanceId"]) == "running"
    assert settings(aws, "web") == before
    assert cooling(aws) == {f"pool#{t}#{zone}": "no-capacity" for t in ("m5.large", "m6i.large", "m7i.large")}

    # Capacity is back, but the pools cool for 30 minutes: the type choice avoids them, so nothing is launched.
    for instance_type in ("m5.large", "m6i.large", "m7i.large"):
        aws.ec2_model.market.set_capacity(instance_type, zone, None)
    _, again = swap(aws, "web", on_demand["InstanceId"], later=1)
    assert json.loads(again["output"])["why"].startswith("no candidate type: ")
    assert "3 cooling down" in json.loads(again["output"])["why"]
    assert launched_by(aws, again["name"]) == []


def test_price_capacity_optimized_prefers_deep_pools_then_price() -> None:
    market = SpotMarket()
    zone = "us-east-1a"
    market.set_price("m5.large", zone, 0.05)
    market.set_price("m6i.large", zone, 0.03)
    market.set_capacity("m6i.large", zone, 2)  # cheap but shallow
    offers = [Offer(Pool("m6i.large", zone), 0.096, 0), Offer(Pool("m5.large", zone), 0.096, 1)]
    chosen, refusals = market.allocate(offers, "price-capacity-optimized", 1)
    assert chosen is not None and chosen.pool.instance_type == "m5.large" and refusals == []
    chosen, _ = market.allocate(offers, "lowest-price", 1)
    assert chosen is not None and chosen.pool.instance_type == "m6i.large"
    assert market.capacity[("m6i.large", zone)] == 1  # taken
    chosen, refusals = market.allocate([Offer(Pool("m6i.large", zone), 0.02, 0)], "price-capacity-optimized", 1)
    assert chosen is None and [r.code for r in refusals] == ["SpotMaxPriceTooLow"]


def test_create_fleet_client_token_returns_the_first_fleet(aws: EmbeddedAws, network, make_group) -> None:
    raw = make_group("web", desired=1, max_size=2)
    request = spot_fleet_request(raw, network.subnets["a"], "same")
    answers = [aws.client("ec2").create_fleet(**request) for _ in range(2)]
    assert len({a["FleetId"] for a in answers}) == 1
    assert len({a["Instances"][0]["InstanceIds"][0] for a in answers}) == 1
    reservations = aws.client("ec2").describe_instances()["Reservations"]
    assert sum(1 for r in reservations for i in r["Instances"] if i.get("InstanceLifecycle") == "spot") == 1


def test_a_policy_denying_every_type_is_refused_as_a_policy_and_cools_nothing(aws: EmbeddedAws, make_group) -> None:
    raw = make_group("web", desired=2, max_size=4, extra_tags={"AsgOptimiser:DeniedTypes": "*"})
    before = settings(aws, "web")
    problem = ("ASG web: tag AsgOptimiser:DeniedTypes='*' is malformed: it denies every instance type, so no spot "
               "could ever be launched")
    response = aws.client("lambda").invoke(FunctionName="asg-optimizer-scanner", Payload=b"{}")
    scan = json.loads(response["Payload"].read())
    assert scan["started"] == [] and scan["skipped_groups"] == [{"asg_name": "web", "why": problem}]

    arn, described = swap(aws, "web", raw["Instances"][0]["InstanceId"])
    assert refusal(described) == ("MalformedPolicy", problem)
    assert "LaunchSpot" not in states_entered(aws, arn)
    assert cooling(aws) == {}  # a configuration is not a capacity problem: no pool cools down
    assert settings(aws, "web") == before


def test_launch_reads_only_its_pools_cooldowns_and_a_warm_container_keeps_them(aws: EmbeddedAws, make_group) -> None:
    """LaunchSpot reads exactly its candidate pools' cooldown keys and the region's quota key (BatchGetItem), never a
    Scan of the whole coordination table; a warm container keeps what it read for COOLDOWN_READ_SECONDS."""
    from tests.test_scan import counted_calls

    raw = make_group("web", desired=2, max_size=4, zones=("a",), extra_tags=ALLOWED)
    first, second = (i["InstanceId"] for i in raw["Instances"])
    with counted_calls() as calls:
        _, described = swap(aws, "web", first)
        assert json.loads(described["output"])["spot"]["outcome"] == "launched"
        assert calls["dynamodb.BatchGetItem"] == 1 and calls["dynamodb.Scan"] == 0
        _, described = swap(aws, "web", second)
    assert json.loads(described["output"])["spot"]["outcome"] == "launched"
    assert calls["dynamodb.BatchGetItem"] == 1 and calls["dynamodb.Scan"] == 0  # the same pools, read moments ago


def test_cooldown_read_honours_own_writes_at_once_and_another_containers_within_the_bound(aws: EmbeddedAws) -> None:
    from tasks.aws.coordination import COOLDOWN_READ_SECONDS, cool_pools, launch_cooldowns
    from tests.test_scan import counted_calls

    here, there = Pool("m5.large", "us-east-1a"), Pool("m6i.large", "us-east-1a")
    table = aws.deployment.table_names["cooldowns"]
    with counted_calls() as calls:
        t0 = time.time()
        assert launch_cooldowns([here, there], "us-east-1", now=t0).pools == frozenset()
        cool_pools([here], reason="no-capacity", source="this container", now=t0 + 1)  # our own write: at once
        aws.client("dynamodb").put_item(TableName=table, Item={  # another container's, behind our back
            "cooldown_key": {"S": "pool#m6i.large#us-east-1a"}, "expires_at": {"N": str(int(t0) + 1800)},
            "reason": {"S": "no-capacity"}, "source": {"S": "another container"}})
        assert launch_cooldowns([here, there], "us-east-1", now=t0 + 2).pools == {here}
        assert calls["dynamodb.BatchGetItem"] == 1  # nothing read again within the bound
        late = launch_cooldowns([here, there], "us-east-1", now=t0 + COOLDOWN_READ_SECONDS + 1)
        assert late.pools == {here, there} and late.quotas == {}
        assert calls["dynamodb.BatchGetItem"] == 2


def test_cooldown_read_asks_100_keys_a_request_and_again_for_unprocessed_keys(aws: EmbeddedAws) -> None:
    """BatchGetItem takes at most 100 keys and may answer part of them (UnprocessedKeys): a read of 250 pools and
    the quota key is three requests, plus one per partial answer, and misses nothing."""
    from tasks.aws.coordination import cool_pools, forget_cooldown_reads, launch_cooldowns
    from tests.test_scan import counted_calls

    pools = [Pool(f"m5.x{n}large", "us-east-1a") for n in range(250)]
    cool_pools(pools[::50], reason="no-capacity", source="test")
    forget_cooldown_reads()
    aws.batch_reads.unprocessed_calls = 2
    with counted_calls() as calls:
        found = launch_cooldowns(pools, "us-east-1")
    assert found.pools == set(pools[::50]) and found.quotas == {}
    assert aws.batch_reads.partial_answers == 2 and calls["dynamodb.BatchGetItem"] == 3 + 2
