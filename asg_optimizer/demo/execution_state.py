"""Where executions are: the current state of each, read from execution history (what the console shows)."""

from __future__ import annotations

from typing import Any


def current_state(sfn: Any, execution_arn: str) -> str:
    """The last state entered, or the final status once the execution ended."""
    described = sfn.describe_execution(executionArn=execution_arn)
    if described["status"] != "RUNNING":
        return described["status"]
    events = sfn.get_execution_history(executionArn=execution_arn, reverseOrder=True, maxResults=20)["events"]
    entered = next((e for e in events if e["type"].endswith("StateEntered")), None)
    return entered["stateEnteredEventDetails"]["name"] if entered else "Starting"
