"""What rollouts keep outside their execution: the checkpoint's task token (for `rollout resume`) and a cancel
request (read by the gate after each batch), as items in the coordination table; and the running rollouts."""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.aws.clients import client
from tasks.aws.coordination import KEY, table_name
from tasks.aws.executions import MAX_PAGE, executions

TOKEN_PREFIX, CANCEL_PREFIX = "rollout#token#", "rollout#cancel#"


def running_rollouts(rollout_state_machine_arn: str) -> list[str]:
    """Names of the RUNNING rollouts (one paginated ListExecutions)."""
    return [e["name"] for e in executions(rollout_state_machine_arn, "RUNNING", page_size=MAX_PAGE)]


def cancel_requested(execution_name: str) -> bool:
    item = client("dynamodb").get_item(TableName=table_name(), Key={KEY: {"S": CANCEL_PREFIX + execution_name}},
                                       ConsistentRead=True).get("Item")
    return item is not None


def keep_token(execution_name: str, asg_name: str, token: str, why: str) -> None:
    """The token `rollout resume` sends success with (a later checkpoint of the same rollout replaces it)."""
    client("dynamodb").put_item(TableName=table_name(), Item={
        KEY: {"S": TOKEN_PREFIX + execution_name}, "token": {"S": token}, "asg_name": {"S": asg_name},
        "why": {"S": why}, "since": {"S": datetime.now(UTC).isoformat(timespec="seconds")}})


def kept_token(execution_name: str, table: str | None = None) -> str | None:
    """The token `keep_token` kept for this rollout's checkpoint, read consistently (None: not waiting).
    `table`: the CLI names the stack's (the functions use their own)."""
    item = client("dynamodb").get_item(TableName=table or table_name(), Key={KEY: {"S": TOKEN_PREFIX + execution_name}},
                                       ConsistentRead=True).get("Item")
    return item["token"]["S"] if item else None


def forget_token(execution_name: str, table: str | None = None) -> None:
    client("dynamodb").delete_item(TableName=table or table_name(), Key={KEY: {"S": TOKEN_PREFIX + execution_name}})


def request_cancel(execution_name: str, table: str | None = None) -> None:
    """The request the gate reads after each batch (`cancel_requested`)."""
    client("dynamodb").put_item(TableName=table or table_name(), Item={
        KEY: {"S": CANCEL_PREFIX + execution_name}, "at": {"S": datetime.now(UTC).isoformat(timespec="seconds")}})
