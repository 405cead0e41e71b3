"""LaunchSpot: one one-time spot instance from the ASG's own launch template, in the on-demand's subnet.

Tagged at creation with the instance it replaces and the execution that owns it (so cleanup and the sweep find
it whatever happens next), and launched with a client token so a retried invocation returns the same spot.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from tasks.aws import aws_handler, client, error_code
from tasks.core.errors import NoSpotCapacity
from tasks.core.naming import client_token
from tasks.core.tags import EXECUTION, REPLACES

logger = Logger()


def launch_request(event: dict[str, Any]) -> dict[str, Any]:
    """The RunInstances request: everything comes from the group's template but the market and placement."""
    template: dict[str, str] = {"Version": event["launch_template_version"]}
    if event.get("launch_template_id"):
        template["LaunchTemplateId"] = event["launch_template_id"]
    else:
        template["LaunchTemplateName"] = event["launch_template_name"]
    tags = {k: v for k, v in event.get("instance_tags", {}).items() if not k.startswith("aws:")}
    tags |= {REPLACES: event["instance_id"], EXECUTION: event["execution_name"]}
    request: dict[str, Any] = {
        "LaunchTemplate": template,
        "InstanceType": event["instance_type"],
        "MinCount": 1,
        "MaxCount": 1,
        "InstanceMarketOptions": {
            "MarketType": "spot",
            "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
        },
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}
        ],
        "ClientToken": client_token(event["execution_name"]),
    }
    if event.get("subnet_id"):
        request["SubnetId"] = event["subnet_id"]
    return request


@aws_handler
@logger.inject_lambda_context(clear_state=True)  # keys appended in one invocation must not leak
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(asg=event["asg_name"], execution=event["execution_name"])
    try:
        instance = client("ec2").run_instances(**launch_request(event))["Instances"][0]
    except ClientError as error:
        if error_code(error) in ("InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded"):
            raise NoSpotCapacity(
                f"no spot capacity for {event['instance_type']} in {event['availability_zone']}: {error_code(error)}"
            ) from error
        raise
    logger.info("spot launched", extra={"spot_instance_id": instance["InstanceId"]})
    return {"spot_instance_id": instance["InstanceId"], "spot_instance_type": instance["InstanceType"]}
