"""CheckSpot: one status poll of the spot; ready once running with both EC2 status checks ok.

EC2 is eventually consistent: a spot launched a moment ago may answer InvalidInstanceID.NotFound. That is "not
ready yet" (it counts as a poll), not a failure."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from tasks.aws.clients import client, error_code
from tasks.aws.invocation import logged_metered_retryable
from tasks.core.readiness import READY, spot_readiness
from tasks.core.steps import BootResult, CheckSpotInput


@logged_metered_retryable
def handler(event: CheckSpotInput, context: Any) -> BootResult:
    spot_id = event["spot"]["spot_instance_id"]
    polls = int(event.get("boot", {}).get("polls", 0)) + 1
    try:
        statuses = client("ec2").describe_instance_status(InstanceIds=[spot_id], IncludeAllInstances=True)[
            "InstanceStatuses"
        ]
    except ClientError as error:
        if error_code(error) != "InvalidInstanceID.NotFound":
            raise
        statuses = [{"InstanceState": {"Name": "pending"}}]  # not visible yet: EC2 reports it pending meanwhile
    status = statuses[0] if statuses else {}
    verdict = spot_readiness(
        instance_id=spot_id,
        state=status.get("InstanceState", {}).get("Name"),
        instance_check=status.get("InstanceStatus", {}).get("Status"),
        system_check=status.get("SystemStatus", {}).get("Status"),
        polls=polls,
        max_polls=int(event["boot_max_polls"]),
    )
    return {"ready": verdict == READY, "polls": polls}
