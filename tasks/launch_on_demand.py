"""LaunchOnDemand: the replacement as an on-demand instance (a swap back for an idle commitment; a rollout that
keeps an instance on-demand). RunInstances from the group's own launch template version, in the old instance's
subnet, of the requested type (Validate's `target_instance_type`), tagged at creation with the instance it replaces
and the execution that owns it, like a spot, so CheckSpot, AttachSpot, RetireOnDemand, Cleanup and the sweep treat
it the same way. The client token makes a retried invocation return the same instance. No capacity for the type in
that zone is an outcome (`no-capacity`, nothing launched), as for spot.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from tasks.aws.clients import aws_handler, client, error_code
from tasks.core.naming import client_token
from tasks.core.tags import EXECUTION, REPLACES
from tasks.launch_spot import LAUNCHED, NO_CAPACITY, template_of

logger = Logger()
# RunInstances' answers that mean "not here, not now" rather than a fault: the type has no capacity in the zone,
# or the zone does not offer it.
NO_CAPACITY_CODES = frozenset({"InsufficientInstanceCapacity", "Unsupported"})


def on_demand_request(event: dict[str, Any]) -> dict[str, Any]:
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


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(asg=event["asg_name"], execution=event["execution_name"])
    wanted = event["target_instance_type"]
    try:
        launched = client("ec2").run_instances(**on_demand_request(event))["Instances"][0]
    except ClientError as error:
        if error_code(error) not in NO_CAPACITY_CODES:
            raise
        logger.warning("no on-demand capacity", extra={"type": wanted, "code": error_code(error)})
        return {"outcome": NO_CAPACITY, "market": "on-demand", "asg_name": event["asg_name"],
                "instance_id": event["instance_id"], "availability_zone": event["availability_zone"],
                "why": f"{error_code(error)}: no on-demand {wanted} in {event['availability_zone']}"}
    logger.info("on-demand launched", extra={"instance_id": launched["InstanceId"], "type": wanted})
    return {"outcome": LAUNCHED, "market": "on-demand", "spot_instance_id": launched["InstanceId"],
            "spot_instance_type": wanted}
