"""Read what the fleet-wide pause is decided from (tasks/core/pause.py): the named CloudWatch alarms, the pause
set by hand (one item in the coordination table), and the swaps that failed in the last hour. The one reader:
the functions call it with their environment, `asg-optimizer status` / `resume` with the deployed scanner's
settings, table and state machine (`environ`, `table`, `state_machine_arn`) on the operator's session
(tasks.aws.clients.clients_from), so the CLI judges exactly as the scanner does.

Calls, whatever the fleet's size: one DescribeAlarms per 100 alarm names (none when no alarm is named), one
GetItem, and one ListExecutions page per status (FAILED, TIMED_OUT) read newest first until executions start
before the window could reach them. Only metric alarms are asked for: IAM returns composite alarms only to a
DescribeAlarms grant on `*`, and ours is scoped to this region's alarms (infra/iam.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from tasks.aws.clients import batches, client
from tasks.aws.coordination import KEY, PAUSE_KEY, table_name
from tasks.aws.executions import replace_state_machine_arn
from tasks.core.pause import (
    FAILURE_WINDOW,
    AlarmState,
    ManualPause,
    Pause,
    failures_in_window,
    fleet_pause,
    group_pause,
    pause_settings,
    tagged_alarms,
)

ALARM_NAMES_PER_CALL = 100  # DescribeAlarms: AlarmNames holds at most 100 names
SWAP_TIMEOUT = timedelta(seconds=7200)  # the replacement state machine's TimeoutSeconds: its longest execution
FAILED_STATUSES = ("FAILED", "TIMED_OUT")  # refusals and no-capacity end SUCCEEDED; ABORTED is a person's stop


def alarm_from_response(raw: dict[str, Any]) -> AlarmState:
    return AlarmState(raw["AlarmName"], raw["StateValue"], raw.get("StateUpdatedTimestamp"))


def manual_pause_from_item(item: dict[str, Any] | None) -> ManualPause | None:
    if not item:
        return None
    return ManualPause(item["why"]["S"], item["by"]["S"], datetime.fromisoformat(item["since"]["S"]))


def pause_item(pause: ManualPause) -> dict[str, dict[str, str]]:
    """The item `asg-optimizer pause` puts (the CLI writes it with the operator's own credentials)."""
    return {KEY: {"S": PAUSE_KEY}, "why": {"S": pause.why}, "by": {"S": pause.by},
            "since": {"S": pause.since.isoformat(timespec="seconds")}}


def alarm_states(names: Iterable[str]) -> dict[str, AlarmState]:
    """Every named alarm's state; a name CloudWatch does not know maps to state None."""
    wanted = sorted(set(names))
    found = {name: AlarmState(name, None) for name in wanted}
    paginator = client("cloudwatch").get_paginator("describe_alarms")
    for batch in batches(wanted, ALARM_NAMES_PER_CALL):
        for page in paginator.paginate(AlarmNames=batch, AlarmTypes=["MetricAlarm"]):
            found.update({a["AlarmName"]: alarm_from_response(a) for a in page.get("MetricAlarms", [])})
    return found


def manual_pause(table: str | None = None) -> ManualPause | None:
    """The pause set by hand, read consistently (a `resume` a moment ago must count)."""
    item = client("dynamodb").get_item(TableName=table or table_name(), Key={KEY: {"S": PAUSE_KEY}},
                                       ConsistentRead=True).get("Item")
    return manual_pause_from_item(item)


def failed_swap_stops(state_machine_arn: str, now: datetime) -> list[datetime]:
    """When each swap that failed or timed out within the window stopped (ListExecutions is newest first by
    start; a swap that stopped in the window started at most SWAP_TIMEOUT before it)."""
    oldest_start = now - FAILURE_WINDOW - SWAP_TIMEOUT
    paginator = client("stepfunctions").get_paginator("list_executions")
    stops = []
    for status in FAILED_STATUSES:
        for page in paginator.paginate(stateMachineArn=state_machine_arn, statusFilter=status,
                                       PaginationConfig={"PageSize": 100}):
            executions = page["executions"]
            stops += [e["stopDate"] for e in executions if e.get("stopDate")]
            if executions and executions[-1]["startDate"] < oldest_start:
                break
    return stops


def current_pause(now: datetime, group_alarms: Iterable[str] = (), *, environ: Mapping[str, str] | None = None,
                  table: str | None = None, state_machine_arn: str | None = None
                  ) -> tuple[Pause | None, dict[str, AlarmState]]:
    """(the fleet's pause or None, the state of every alarm named by the stack or in `group_alarms`). `environ`,
    `table`, `state_machine_arn`: the stack's settings, coordination table and replacement state machine (by
    default the calling function's own)."""
    return pause_with(now, manual_pause(table), group_alarms, environ=environ, state_machine_arn=state_machine_arn)


def pause_with(now: datetime, manual: ManualPause | None, group_alarms: Iterable[str] = (), *,
               environ: Mapping[str, str] | None = None, state_machine_arn: str | None = None
               ) -> tuple[Pause | None, dict[str, AlarmState]]:
    """current_pause, given the pause by hand as the caller read it consistently (the scanner: in its one Scan of
    the coordination table, tasks.aws.coordination.active_cooldowns)."""
    settings = pause_settings(os.environ if environ is None else environ)
    names = set(settings.alarms) | set(group_alarms)
    alarms = alarm_states(names) if names else {}
    failures = failures_in_window(failed_swap_stops(state_machine_arn or replace_state_machine_arn(), now), now)
    return fleet_pause(settings, alarms, manual, failures), alarms


def group_pauses(groups: Mapping[str, Mapping[str, str]], now: datetime, *, environ: Mapping[str, str] | None = None,
                 table: str | None = None, state_machine_arn: str | None = None
                 ) -> tuple[Pause | None, dict[str, Pause]]:
    """(the fleet's pause, group name -> its pause) for groups by name -> tags: the fleet's and each group's own
    tagged alarms, every alarm read once."""
    tagged = {name: tagged_alarms(tags) for name, tags in groups.items()}
    fleet, alarms = current_pause(now, {a for own in tagged.values() for a in own}, environ=environ, table=table,
                                  state_machine_arn=state_machine_arn)
    return fleet, {name: p for name, own in tagged.items() if (p := group_pause(fleet, own, alarms))}


def paused_group(tags: dict[str, str], now: datetime) -> Pause | None:
    """The pause over one group (the fleet's and its own tagged alarms), for handlers that start one swap."""
    return group_pauses({"": tags}, now)[1].get("")
