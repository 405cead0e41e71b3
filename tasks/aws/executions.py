"""Replacement executions: which are running (one paginated ListExecutions, matched to instances by execution
name), and starting them, named deterministically so a repeated start is recognised, not duplicated."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from tasks.aws.clients import client, error_code
from tasks.aws.settings import InterruptionMachine, ReplaceMachine, RolloutMachine
from tasks.core.naming import execution_name, instance_of
from tasks.core.steps import SwapRequest
from tasks.core.timing import Timing


def replace_state_machine_arn() -> str:
    return ReplaceMachine.from_env().arn


def interruption_state_machine_arn() -> str:
    return InterruptionMachine.from_env().arn


def rollout_state_machine_arn() -> str:
    return RolloutMachine.from_env().arn


def running_swaps(state_machine_arn: str) -> dict[str, list[tuple[str, float]]]:
    """RUNNING executions of the replacement state machine, as instance id -> [(name, start epoch)]."""
    found: dict[str, list[tuple[str, float]]] = {}
    # 1,000 a page (the API's maximum; its default is 100), so one call covers a large fleet's swaps
    for execution in executions(state_machine_arn, "RUNNING", page_size=MAX_PAGE):
        instance_id = instance_of(execution["name"])
        if instance_id:
            found.setdefault(instance_id, []).append((execution["name"], execution["startDate"].timestamp()))
    return found


MAX_PAGE = 1000  # ListExecutions' maximum page


def execution_pages(state_machine_arn: str, status: str | None = None, *,
                    page_size: int = 100) -> Iterator[list[dict[str, Any]]]:
    """One state machine's executions (all, or those in `status`), page by page in ListExecutions' own order
    (newest first): a caller that stops early reads no further pages. The client is taken now, at the call
    (under the CLI's `clients_from`), not when the first page is read."""
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "PaginationConfig": {"PageSize": page_size}}
    if status:
        kwargs["statusFilter"] = status
    pages = client("stepfunctions").get_paginator("list_executions").paginate(**kwargs)
    return (list(page["executions"]) for page in pages)


def executions(state_machine_arn: str, status: str | None = None, *,
               page_size: int = 100) -> Iterator[dict[str, Any]]:
    """The executions of `execution_pages`, one by one."""
    return (execution for page in execution_pages(state_machine_arn, status, page_size=page_size)
            for execution in page)


def start_swap(state_machine_arn: str, asg_name: str, instance_id: str, *, reason: str, timing: Timing,
               at: datetime, market: str = "spot", instance_type: str | None = None) -> tuple[str, bool]:
    """(execution name, True if this call started it). ExecutionAlreadyExists means an earlier start with the
    same name (a retried scan, a duplicate event): already running, not an error. The input is deterministic,
    so Step Functions returns the first execution for an identical repeat. `market`/`instance_type`: the new
    instance's (docs/replacement.md); sent only for on-demand, so spot payloads stay as they were."""
    name = execution_name(asg_name, instance_id, at)
    payload: SwapRequest = {"asg_name": asg_name, "instance_id": instance_id, "reason": reason,
                            "timing": timing.flat()}
    if market != "spot":
        payload["market"] = market
        if instance_type:
            payload["instance_type"] = instance_type
    return name, start_named(state_machine_arn, name, payload)


def start_named(state_machine_arn: str, name: str, payload: Mapping[str, object]) -> bool:
    """Start an execution under a deterministic name; False when one of that name already exists (a redelivered
    event, a retried scan): already running, not an error.

    Step Functions answers a repeat with the same name AND input by returning the first execution, which cannot
    be told from a new start. So each call's input carries its own `start_id`: another caller's repeat differs
    in input and gets ExecutionAlreadyExists; only botocore's own retry of this very call (same input) is
    answered with the execution this call started."""
    try:
        client("stepfunctions").start_execution(
            stateMachineArn=state_machine_arn, name=name,
            input=json.dumps({**payload, "start_id": uuid.uuid4().hex}, sort_keys=True),
        )
    except ClientError as error:
        if error_code(error) == "ExecutionAlreadyExists":
            return False
        raise
    return True
