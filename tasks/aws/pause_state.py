"""Read what the fleet-wide pause is decided from (tasks/core/pause.py): the named CloudWatch alarms, the pause
set by hand (one item in the coordination table), and the swaps that failed in the last hour. The one reader:
the functions call it with their environment, `asg-optimizer status` / `resume` with the deployed scanner's
settings, table and state machine (`environ`, `table`, `state_machine_arn`) on the operator's session
(tasks.aws.clients.clients_from), so the CLI judges exactly as the scanner does.

Calls, whatever the fleet's size: one DescribeAlarms per 100 alarm names (none when no alarm is named), one
GetItem (the scanner reads the record in its Scan of the coordination table instead), and one GetMetricData for
the failed swaps. Only metric alarms are asked for: IAM returns composite alarms only to a DescribeAlarms grant on
`*`, and ours is scoped to this region's alarms (infra/iam.py).

The failed swaps are Step Functions' own count (AWS/States ExecutionsFailed and ExecutionsTimedOut of the
replacement state machine, the metrics its failed-executions alarm watches), not a listing of executions: one call
for both statuses however many executions ran, and a timed-out or crashed swap counts as surely as one that
reached its Fail state. Like ListExecutions (eventually consistent) it may miss a swap that failed moments ago;
CloudWatch has the datapoint within about a minute, so the next scan (5 minutes on) counts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tasks.aws.clients import batches, client
from tasks.aws.coordination import KEY, PAUSE_KEY, table_name
from tasks.aws.executions import replace_state_machine_arn
from tasks.aws.settings import FleetPause
from tasks.core.pause import (
    FAILED_SWAP_METRICS,
    AlarmState,
    ManualPause,
    Pause,
    failure_window,
    fleet_pause,
    group_pause,
    tagged_alarms,
)

ALARM_NAMES_PER_CALL = 100  # DescribeAlarms: AlarmNames holds at most 100 names
STATES_NAMESPACE = "AWS/States"
METRIC_PERIOD_SECONDS = 60  # Step Functions' metrics are per minute: one datapoint a minute of the window


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


def failed_swaps(state_machine_arn: str, now: datetime) -> int:
    """How many swaps failed or timed out in the window (tasks.core.pause.failure_window): both metrics in one
    GetMetricData, summed over the window's minutes (60 datapoints a metric: one page; a NextToken is followed
    all the same)."""
    start, end = failure_window(now)
    queries = [{"Id": f"m{n}", "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": STATES_NAMESPACE, "MetricName": name,
                   "Dimensions": [{"Name": "StateMachineArn", "Value": state_machine_arn}]},
        "Period": METRIC_PERIOD_SECONDS, "Stat": "Sum"}} for n, name in enumerate(FAILED_SWAP_METRICS)]
    pages = client("cloudwatch").get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=start, EndTime=end)
    return round(sum(float(v) for page in pages for result in page["MetricDataResults"] for v in result["Values"]))


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
    settings = (FleetPause.from_env() if environ is None else FleetPause.from_env(environ)).settings
    names = set(settings.alarms) | set(group_alarms)
    alarms = alarm_states(names) if names else {}
    failures = failed_swaps(state_machine_arn or replace_state_machine_arn(), now)
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
