"""LaunchOnDemand: the replacement as an on-demand instance (a swap back for an idle commitment; a rollout that
keeps an instance on-demand). RunInstances from the group's own launch template version, in the old instance's
subnet, of the requested type (Validate's `target_instance_type`), tagged at creation with the instance it replaces
and the execution that owns it, like a spot, so CheckSpot, AttachSpot, RetireOnDemand, Cleanup and the sweep treat
it the same way. The client token makes a retried invocation return the same instance. No capacity for the type in
that zone is an outcome (`no-capacity`, nothing launched), as for spot: the on-demand pool (type and zone, market
on-demand) cools in the cooldown table like a spot pool, so the scanner's swaps back skip it until the cooldown
ends instead of retrying every scan, and the instance's claim is released.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from tasks.aws.clients import client, error_code
from tasks.aws.coordination import cool_pools, release_claim
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.core.cooldowns import ON_DEMAND
from tasks.core.naming import client_token
from tasks.core.prices import Pool
from tasks.core.steps import LaunchOnDemandResult, NoCapacity, SwapState
from tasks.core.tags import EXECUTION, REPLACES
from tasks.launch_spot import LAUNCHED, NO_CAPACITY, template_of

# RunInstances' answers that mean "not here, not now" rather than a fault: the type has no capacity in the zone,
# or the zone does not offer it.
NO_CAPACITY_CODES = frozenset({"InsufficientInstanceCapacity", "Unsupported"})


def on_demand_request(event: SwapState) -> dict[str, Any]:
    """The RunInstances request: one instance of the target type from the group's template, in the old one's subnet."""
    tags = {k: v for k, v in event.get("instance_tags", {}).items() if not k.startswith("aws:")}
    tags |= {REPLACES: event["instance_id"], EXECUTION: event["execution_name"]}
    request: dict[str, Any] = {
        "LaunchTemplate": template_of(event), "InstanceType": event["target_instance_type"], "MinCount": 1,
        "MaxCount": 1, "ClientToken": client_token(event["execution_name"]),
        "TagSpecifications": [{"ResourceType": "instance",
                               "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}],
    }
    if event.get("image_id"):  # a rollout to an AMI: the template's other settings, this image
        request["ImageId"] = event["image_id"]
    if event.get("subnet_id"):
        request["SubnetId"] = event["subnet_id"]
    else:
        request["Placement"] = {"AvailabilityZone": event["availability_zone"]}
    return request


def no_capacity(event: SwapState, code: str) -> NoCapacity:
    """The execution ends here (outcome no-capacity): the on-demand pool cools, the instance's claim is released."""
    pool = Pool(event["target_instance_type"], event["availability_zone"])
    cool_pools([pool], reason=NO_CAPACITY, source=event["execution_name"], market=ON_DEMAND)
    release_claim(event["asg_name"], event["instance_id"], event["execution_name"])
    logger.warning("no on-demand capacity", extra={"pool": str(pool), "code": code})
    return {"outcome": NO_CAPACITY, "market": ON_DEMAND, "asg_name": event["asg_name"],
            "instance_id": event["instance_id"], "availability_zone": event["availability_zone"],
            "why": f"{code}: no on-demand {pool.instance_type} in {pool.availability_zone}",
            "cooled_pools": [f"{pool} (on-demand)"]}


@logged_metered_retryable
def handler(event: SwapState, context: Any) -> LaunchOnDemandResult:
    logger.append_keys(asg=event["asg_name"], execution=event["execution_name"])
    wanted = event["target_instance_type"]
    try:
        launched = client("ec2").run_instances(**on_demand_request(event))["Instances"][0]
    except ClientError as error:
        if error_code(error) not in NO_CAPACITY_CODES:
            raise
        return no_capacity(event, error_code(error))
    logger.info("on-demand launched", extra={"instance_id": launched["InstanceId"], "type": wanted})
    return {"outcome": LAUNCHED, "market": ON_DEMAND, "spot_instance_id": launched["InstanceId"],
            "spot_instance_type": wanted}
