"""LaunchSpot: one spot instance through CreateFleet `instant` with `price-capacity-optimized`, from the ASG's own
launch template version, in the on-demand's subnet, over every candidate type (tasks.core.instance_types).

No override carries a MaxPrice: AWS advises against one (a spot is interrupted once the price passes it), and
without one EC2 caps the price at the launched type's own on-demand price. What keeps a spot cheaper than the
instance it replaces is the candidate choice: only types whose spot price is at most the original's on-demand
price (for the instance's OS) are offered. No capacity in any candidate pool is an outcome, not a failure: nothing is
launched, the pools go on cooldown and the execution ends `no-capacity`. A spot quota error in the fleet's
Errors (MaxSpotInstanceCountExceeded, ...) is an outcome too (`quota-exceeded`): every swap of the region backs
off for the cooldown. Tagged at creation with the instance it replaces and the execution that owns it.

Idempotent without a write on the way: the client token is the execution's, so a re-run after a crash that sends
the same request gets the first fleet back. A re-run whose candidates moved (prices, cooldowns) sends another
request under that token, which EC2 answers IdempotentParameterMismatch: proof that the first attempt's fleet went
out, so the re-run looks its spot up by the execution tag and goes on (SpotNotVisibleYet, retried, while EC2 does
not show it yet). A re-run that finds no candidate at all looks by tag too before it reports no capacity.
The template is read only when it matters: for an original type with instance storage, and when CreateFleet
refuses the request, to name a template setting a fleet cannot use (nothing was launched either way).
"""

from __future__ import annotations

from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from tasks.aws.clients import client, error_code
from tasks.aws.coordination import Cooldowns, cool_pools, cool_quota, launch_cooldowns, release_claim
from tasks.aws.instance_types import InstanceCatalog, template_data, template_maps_instance_store
from tasks.aws.instances import LIVE_STATES, describe_instances
from tasks.aws.invocation import logged_metered_retryable, logger, metrics
from tasks.aws.prices import PriceBook
from tasks.aws.settings import Region
from tasks.core.cooldowns import COOLDOWN_SECONDS, quota_skip, types_cooling_in
from tasks.core.create_fleet_result import FleetResult, LaunchFailed, read_create_fleet
from tasks.core.errors import SpotNotVisibleYet
from tasks.core.instance_types import MAX_OVERRIDES, Candidate, CandidateChoice, choose_candidates, incompatibility
from tasks.core.model import Instance
from tasks.core.naming import client_token
from tasks.core.policy import parse_policy
from tasks.core.prices import Pool, hourly_saving, operating_system
from tasks.core.steps import LaunchRefused, LaunchSpotResult, NoCapacity, QuotaExceeded, SpotLaunched, SwapState
from tasks.core.tags import EXECUTION, REPLACES
from tasks.core.templates import UnsupportedLaunchTemplate, fleet_refusal

LAUNCHED: Final = "launched"
NO_CAPACITY: Final = "no-capacity"
QUOTA_EXCEEDED: Final = "quota-exceeded"
REFUSED: Final = "refused"
# What CreateFleet answers a request its template cannot be combined with (not throttling: nothing to read then).
TEMPLATE_REFUSALS = frozenset({"InvalidParameterValue", "InvalidParameterCombination", "InvalidParameter"})


def template_of(event: SwapState) -> dict[str, str]:
    template = {"Version": event["launch_template_version"]}
    if template_id := event.get("launch_template_id"):
        template["LaunchTemplateId"] = template_id
    else:
        name = event["launch_template_name"]
        assert name is not None  # Validate's group launches from a template: it has an id or a name
        template["LaunchTemplateName"] = name
    return template


def fleet_request(event: SwapState, candidates: tuple[Candidate, ...]) -> dict[str, Any]:
    """The CreateFleet request: the group's template, one override per candidate type in the on-demand's subnet."""
    tags = {k: v for k, v in event.get("instance_tags", {}).items() if not k.startswith("aws:")}
    tags |= {REPLACES: event["instance_id"], EXECUTION: event["execution_name"]}
    overrides: list[dict[str, str]] = [{"InstanceType": c.instance_type} for c in candidates]
    if image_id := event.get("image_id"):  # a rollout to an AMI: the template's other settings, this image
        overrides = [{**o, "ImageId": image_id} for o in overrides]
    if subnet_id := event.get("subnet_id"):
        overrides = [{**o, "SubnetId": subnet_id} for o in overrides]
    else:
        overrides = [{**o, "AvailabilityZone": event["availability_zone"]} for o in overrides]
    return {
        "Type": "instant",
        "TargetCapacitySpecification": {"TotalTargetCapacity": 1, "SpotTargetCapacity": 1,
                                        "DefaultTargetCapacityType": "spot"},
        "SpotOptions": {"AllocationStrategy": "price-capacity-optimized", "InstanceInterruptionBehavior": "terminate",
                        "MinTargetCapacity": 1, "SingleInstanceType": True},
        "LaunchTemplateConfigs": [{"LaunchTemplateSpecification": template_of(event), "Overrides": overrides}],
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}
        ],
        "ClientToken": client_token(event["execution_name"]),
    }


def candidates_for(event: SwapState, prices: PriceBook, on_demand_price: float,
                   region: str) -> tuple[CandidateChoice, Cooldowns]:
    """Compatible types with a spot price in the zone at most the original's on-demand price, not cooling, and the
    cooldowns read for them: exactly those pools' keys and the region's spot quota (tasks.aws.coordination).

    The group's policy tags come from Validate's read of the group. The template is read only when the original
    type has instance storage: for any other type, instance-store mappings in the template map nothing.
    """
    policy = parse_policy(event["asg_name"], event.get("group_tags", {}), default_grace_period=0)
    catalog = InstanceCatalog()
    original = catalog.get(event["instance_type"])
    needs_storage = original.instance_storage_gb > 0 and template_maps_instance_store(template_data(template_of(event)))
    allowed = event.get("override_types")  # a mixed-instances group: its overrides from the same template
    types = {name: info for name, info in catalog.all().items() if allowed is None or name in allowed}
    compatible = [name for name, info in types.items()
                  if incompatibility(original, info, policy, needs_instance_storage=needs_storage) is None]
    zone = event["availability_zone"]
    spot_prices = prices.spot_prices(compatible, zone)

    def choose(cooling: frozenset[str], limit: int = MAX_OVERRIDES) -> CandidateChoice:
        return choose_candidates(original, types, policy, needs_instance_storage=needs_storage,
                                 spot_prices=spot_prices, on_demand_price=on_demand_price, cooling=cooling,
                                 limit=limit)

    priced = choose(frozenset(), limit=len(types))  # every candidate a cooldown could rule out: the keys to read
    cooldowns = launch_cooldowns([Pool(c.instance_type, zone) for c in priced.candidates], region)
    return choose(types_cooling_in(cooldowns.pools, zone)), cooldowns


def no_capacity(event: SwapState, pools: list[Pool], why: str) -> NoCapacity:
    """The execution ends here (outcome no-capacity): the pools cool down and the instance's claim is released."""
    cooled = cool_pools(pools, reason=NO_CAPACITY, source=event["execution_name"])
    release_claim(event["asg_name"], event["instance_id"], event["execution_name"])
    metrics.add_metric(name="NoSpotCapacity", unit=MetricUnit.Count, value=1)
    logger.warning("no spot capacity", extra={"why": why, "cooled": cooled})
    return {"outcome": NO_CAPACITY, "asg_name": event["asg_name"], "instance_id": event["instance_id"],
            "availability_zone": event["availability_zone"], "why": why, "cooled_pools": [str(p) for p in pools]}


def quota_exceeded(event: SwapState, code: str, why: str) -> QuotaExceeded:
    """The account's spot quota refused the launch: back off every swap of the region, page nobody. The execution
    ends here, so the instance's claim is released."""
    region = Region.from_env().name
    cool_quota(region, code=code.split(":")[0], source=event["execution_name"])
    release_claim(event["asg_name"], event["instance_id"], event["execution_name"])
    metrics.add_metric(name="SpotQuotaExceeded", unit=MetricUnit.Count, value=1)
    logger.warning("spot quota exceeded", extra={"why": why, "region": region})
    return {"outcome": QUOTA_EXCEEDED, "asg_name": event["asg_name"], "instance_id": event["instance_id"],
            "availability_zone": event["availability_zone"], "why": why}


def refused(event: SwapState, refusal: UnsupportedLaunchTemplate) -> LaunchRefused:
    """The group's template is one CreateFleet cannot launch from: nothing was launched, so the execution ends as
    outcome refused (like Validate's refusals: a setting to change, not a failure that pages) and frees its claim."""
    release_claim(event["asg_name"], event["instance_id"], event["execution_name"])
    logger.warning("launch template refused", extra={"why": str(refusal)})
    return {"outcome": REFUSED, "reason": type(refusal).__name__, "why": str(refusal),
            "asg_name": event["asg_name"], "instance_id": event["instance_id"]}


def fresh_launch(event: SwapState, prices: PriceBook, region: str) -> tuple[dict[str, Any] | str, str | None]:
    """The request and the prices it was chosen at, or why there is nothing to launch; and the quota error code
    when the region's spot quota is cooling (nothing is launched then)."""
    on_demand = prices.on_demand(event["instance_type"])
    choice, cooling = candidates_for(event, prices, on_demand.price, region)
    quota = cooling.quotas.get(region)
    if quota:
        return quota_skip(region, quota), quota
    if not choice.candidates:
        return f"no candidate type: {choice.summary()}", None
    logger.info("candidates", extra={"candidates": len(choice.candidates), "left_out": choice.summary()})
    return {"request": fleet_request(event, choice.candidates),
            "spot_prices": {c.instance_type: c.spot_price for c in choice.candidates},
            "on_demand_price": on_demand.price, "on_demand_price_source": on_demand.source}, None


def own_spot(execution: str) -> Instance | None:
    """The spot an earlier attempt of this execution launched (by its tag), if EC2 shows it."""
    found = describe_instances(filters=[{"Name": f"tag:{EXECUTION}", "Values": [execution]},
                                        {"Name": "instance-state-name", "Values": LIVE_STATES}])
    return found[0] if found else None


def earlier_launch(event: SwapState, prices: PriceBook, spot: Instance) -> dict[str, Any]:
    """A re-run goes on with the spot its first attempt launched, priced now (the request it was chosen by is
    not kept)."""
    on_demand = prices.on_demand(event["instance_type"])
    spot_price = prices.spot_prices([spot.instance_type], event["availability_zone"]).get(spot.instance_type)
    logger.info("spot launched by an earlier attempt", extra={"spot_instance_id": spot.instance_id})
    return {"spot_prices": {spot.instance_type: on_demand.price if spot_price is None else spot_price},
            "on_demand_price": on_demand.price, "on_demand_price_source": on_demand.source,
            "result": FleetResult(spot.instance_id, spot.instance_type, ())}


def send(event: SwapState, launch: dict[str, Any], prices: PriceBook) -> dict[str, Any]:
    """CreateFleet; the launch with its result. A refusal that a template setting explains is named as such."""
    try:
        response = client("ec2").create_fleet(**launch["request"])
        return {**launch, "result": read_create_fleet(response, event["availability_zone"])}
    except ClientError as error:
        if error_code(error) in TEMPLATE_REFUSALS:
            refuse_unusable_template(event)
        if error_code(error) != "IdempotentParameterMismatch":
            raise
    except LaunchFailed:
        refuse_unusable_template(event)
        raise
    spot = own_spot(event["execution_name"])  # an earlier attempt's fleet went out under this token
    if spot is None:
        raise SpotNotVisibleYet(f"the first fleet of {event['execution_name']} is not visible in EC2 yet")
    return earlier_launch(event, prices, spot)


def refuse_unusable_template(event: SwapState) -> None:
    refusal = fleet_refusal(template_data(template_of(event)))
    if refusal:  # CreateFleet launched nothing
        raise UnsupportedLaunchTemplate(f"ASG {event['asg_name']}: {refusal}")


@logged_metered_retryable
def handler(event: SwapState, context: Any) -> LaunchSpotResult:
    logger.append_keys(asg=event["asg_name"], execution=event["execution_name"])
    try:
        return launch_spot(event)
    except UnsupportedLaunchTemplate as refusal:
        return refused(event, refusal)


def launch_spot(event: SwapState) -> LaunchSpotResult:
    execution, region = event["execution_name"], Region.from_env().name
    original_pool = Pool(event["instance_type"], event["availability_zone"])
    prices = PriceBook(region, operating_system(event["platform_details"]))
    planned, quota = fresh_launch(event, prices, region)
    if isinstance(planned, str):  # nothing to launch now, unless an earlier attempt of this execution launched
        spot = own_spot(execution)
        if spot is None:
            return quota_exceeded(event, quota, planned) if quota else no_capacity(event, [original_pool], planned)
        launch = earlier_launch(event, prices, spot)
    else:
        launch = send(event, planned, prices)
    result = launch["result"]
    if result.quota:
        return quota_exceeded(event, result.quota, f"spot quota: {result.quota}; spot launches in {region} back "
                                                   f"off for {COOLDOWN_SECONDS // 60} minutes")
    if result.instance_id is None:
        pools = sorted({original_pool, *result.exhausted})
        return no_capacity(event, pools, f"no spot capacity in {len(result.exhausted)} candidate pool(s)")
    spot_price = launch["spot_prices"][result.instance_type]
    saving = hourly_saving(launch["on_demand_price"], spot_price)
    metrics.add_dimension(name="AutoScalingGroup", value=event["asg_name"])
    metrics.add_metric(name="HourlySavingUSD", unit=MetricUnit.NoUnit, value=saving)
    logger.info("spot launched", extra={"spot_instance_id": result.instance_id, "type": result.instance_type})
    launched: SpotLaunched = {
        "outcome": LAUNCHED, "spot_instance_id": result.instance_id, "spot_instance_type": result.instance_type,
        "spot_price": spot_price, "on_demand_price": launch["on_demand_price"],
        "on_demand_price_source": launch["on_demand_price_source"], "hourly_saving": saving,
        "candidate_types": list(launch["spot_prices"]),
    }
    return launched
