"""Which swaps are running: one paginated ListExecutions, matched to instances by execution name."""

from __future__ import annotations

from tasks.aws import client
from tasks.core.naming import instance_of


def running_swaps(state_machine_arn: str) -> dict[str, list[tuple[str, float]]]:
    """RUNNING executions of the replacement state machine, as instance id -> [(name, start epoch)]."""
    found: dict[str, list[tuple[str, float]]] = {}
    pages = client("stepfunctions").get_paginator("list_executions").paginate(
        stateMachineArn=state_machine_arn, statusFilter="RUNNING", PaginationConfig={"PageSize": 1000}
    )  # 1,000 a page (the API's maximum; its default is 100), so one call covers a large fleet's swaps
    for page in pages:
        for execution in page["executions"]:
            instance_id = instance_of(execution["name"])
            if instance_id:
                found.setdefault(instance_id, []).append((execution["name"], execution["startDate"].timestamp()))
    return found
