"""LaunchSpot: one spot instance through CreateFleet `instant` with `price-capacity-optimized`, from the ASG's own
launch template version, in the on-demand's subnet, over every candidate type (tasks.core.instance_types).

Each override carries the original's on-demand price as MaxPrice, so EC2 itself never launches a spot dearer
than the instance it replaces. No capacity in any candidate pool is an outcome, not a failure: nothing is
launched, the pools go on cooldown and the execution ends `no-capacity`. Tagged at creation with the instance it
replaces and the execution that owns it; the client token makes a retried invocation return the same fleet.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from tasks.aws.clients import aws_handler, client
from tasks.aws.coordination import active_pools, cool_pools, release_claim
from tasks.aws.instance_types import InstanceCatalog, template_maps_instance_store
from tasks.aws.prices import PriceBook
from tasks.core.cooldowns import types_cooling_in
from tasks.core.fleet_result import read_fleet
from tasks.core.instance_types import Candidate, CandidateChoice, choose_candidates, incompatibility
from tasks.core.naming import client_token
from tasks.core.policy import parse_policy
from tasks.core.prices import Pool, hourly_saving, operating_system
from tasks.core.tags import EXECUTION, REPLACES

logger = Logger()
metrics = Metrics()
LAUNCHED, NO_CAPACITY = "launched", "no-capacity"


def template_of(event: dict[str, Any]) -> dict[str, str]:
    template = {"Version": event["launch_template_version"]}
    if event.get("launch_template_id"):
        template["LaunchTemplateId"] = event["launch_template_id"]
    else:
        template["LaunchTemplateName"] = event["launch_template_name"]
    return template


def fleet_request(event: dict[str, Any], candidates: tuple[Candidate, ...], max_price: float) -> dict[str, Any]:
    """The CreateFleet request: the group's template, one override per candidate type in the on-demand's subnet."""
    tags = {k: v for k, v in event.get("instance_tags", {}).items() if not k.startswith("aws:")}
    tags |= {REPLACES: event["instance_id"], EXECUTION: event["execution_name"]}
    overrides = [{"InstanceType": c.instance_type, "MaxPrice": f"{max_price:.6f}"} for c in candidates]
    if event.get("subnet_id"):
        overrides = [{**o, "SubnetId": event["subnet_id"]} for o in overrides]
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


def candidates_for(event: dict[str, Any], prices: PriceBook, on_demand_price: float) -> CandidateChoice:
    """Compatible types with a spot price in the zone at most the original's on-demand price, not cooling.

    The group's policy tags come from Validate's read of the group. The template is read only when the original
    type has instance storage: for any other type, instance-store mappings in the template map nothing.
    """
    policy = parse_policy(event["asg_name"], event.get("group_tags", {}), default_grace_period=0)
    catalog = InstanceCatalog()
    original = catalog.get(event["instance_type"])
    needs_storage = original.instance_storage_gb > 0 and template_maps_instance_store(template_of(event))
    allowed = event.get("override_types")  # a mixed-instances group: its overrides from the same template
    types = {name: info for name, info in catalog.all().items() if allowed is None or name in allowed}
    compatible = [name for name, info in types.items()
                  if incompatibility(original, info, policy, needs_instance_storage=needs_storage) is None]
    zone = event["availability_zone"]
    return choose_candidates(
        original, types, policy, needs_instance_storage=needs_storage,
        spot_prices=prices.spot_prices(compatible, zone), on_demand_price=on_demand_price,
        cooling=types_cooling_in(active_pools(), zone),
    )


def no_capacity(event: dict[str, Any], pools: list[Pool], why: str) -> dict[str, Any]:
    """The execution ends here (outcome no-capacity): the pools cool down and the instance's claim is released."""
    cooled = cool_pools(pools, reason=NO_CAPACITY, source=event["execution_name"])
    release_claim(event["asg_name"], event["instance_id"], event["execution_name"])
    metrics.add_metric(name="NoSpotCapacity", unit=MetricUnit.Count, value=1)
    logger.warning("no spot capacity", extra={"why": why, "cooled": cooled})
    return {"outcome": NO_CAPACITY, "asg_name": event["asg_name"], "instance_id": event["instance_id"],
            "availability_zone": event["availability_zone"], "why": why, "cooled_pools": [str(p) for p in pools]}


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(asg=event["asg_name"], execution=event["execution_name"])
    original_pool = Pool(event["instance_type"], event["availability_zone"])
    prices = PriceBook(os.environ["AWS_REGION"], operating_system(event.get("platform_details")))
    on_demand = prices.on_demand(event["instance_type"])
    choice = candidates_for(event, prices, on_demand.price)
    if not choice.candidates:
        return no_capacity(event, [original_pool], f"no candidate type: {choice.summary()}")
    response = client("ec2").create_fleet(**fleet_request(event, choice.candidates, on_demand.price))
    result = read_fleet(response, event["availability_zone"])
    if result.instance_id is None:
        pools = sorted({original_pool, *result.exhausted})
        return no_capacity(event, pools, f"no spot capacity in {len(result.exhausted)} candidate pool(s)")
    spot_price = next(c.spot_price for c in choice.candidates if c.instance_type == result.instance_type)
    saving = hourly_saving(on_demand.price, spot_price)
    metrics.add_dimension(name="AutoScalingGroup", value=event["asg_name"])
    metrics.add_metric(name="HourlySavingUSD", unit=MetricUnit.NoUnit, value=saving)
    logger.info("spot launched", extra={"spot_instance_id": result.instance_id, "type": result.instance_type,
                                        "candidates": len(choice.candidates), "left_out": choice.summary()})
    return {
        "outcome": LAUNCHED, "spot_instance_id": result.instance_id, "spot_instance_type": result.instance_type,
        "spot_price": spot_price, "on_demand_price": on_demand.price, "on_demand_price_source": on_demand.source,
        "hourly_saving": saving, "candidate_types": [c.instance_type for c in choice.candidates],
    }
