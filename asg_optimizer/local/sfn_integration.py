"""The Step Functions service integration (`arn:aws:states:::states:startExecution.sync:2`) as AWS runs it.

moto 5.2's interpreter hands the state's Parameters to boto3 as written (`StateMachineArn`, `Name`, `Input`),
where boto3 wants its own member names (`stateMachineArn`), so every StartExecution task fails with
`States.Runtime` ('StateMachineArn'); it then reads the answer in PascalCase (`ExecutionArn`) although boto3's
is camelCase. AWS takes the API's PascalCase names and answers in them, dates as epoch milliseconds (the
`.sync:2` result is DescribeExecution with `Input`/`Output` as JSON). This model converts both ways; the
interpreter's own polling of the child (`.sync`, `.sync:2`) is left as it is.

Stopping the parent: AWS stops the child a `.sync`/`.sync:2` task waits for (Run a Job: a stopped execution stops
its job); moto leaves it RUNNING. Each child is recorded against its parent as its task starts it, and a
stopped parent stops its running children (asl_interpreter's stop; test:
`test_stopping_a_rollout_stops_its_running_sync_child_as_in_aws`).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)

from asg_optimizer.local.patching import Patches

_patches = Patches()
_children: dict[str, set[str]] = {}  # parent execution ARN -> ARNs of the children its .sync tasks started
_stopped: set[str] = set()  # parents stopped: a child recorded after its parent's stop is stopped at once
_lock = threading.Lock()


def parent_stopped(parent_arn: str, stop_date: Any) -> None:
    """A stopped parent stops the children its `.sync`/`.sync:2` tasks wait for, as AWS does."""
    with _lock:
        _stopped.add(parent_arn)
        children = set(_children.get(parent_arn, ()))
    _stop(children, stop_date, parent_arn)


def _stop(arns: set[str], stop_date: Any, parent_arn: str) -> None:
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    if not arns:
        return
    for account in list(stepfunctions_parser_backends):
        for backend in list(stepfunctions_parser_backends[account].values()):
            for execution in backend._get_executions(ExecutionStatus.RUNNING):
                if execution.exec_arn in arns:
                    execution.stop(stop_date=stop_date, error=None, cause=f"parent {parent_arn} stopped")


def _record_child(env: Any) -> None:
    """Right after the task's StartExecution: the child is its parent's (stopped at once if the parent already
    was: the two meet under one lock, so no stop falls between the start and the record)."""
    answer = env.stack[-1] if env.stack else None
    child = answer.get("ExecutionArn") or answer.get("executionArn") if isinstance(answer, dict) else None
    if not child:
        return
    parent = env.states.context_object.context_object_data["Execution"]["Id"]
    with _lock:
        _children.setdefault(parent, set()).add(child)
        stopped = parent in _stopped
    if stopped:
        _stop({child}, datetime.now(UTC), parent)


def _pascal(response: dict[str, Any]) -> None:
    for key in list(response):
        value = response.pop(key)
        response[key[0].upper() + key[1:]] = int(value.timestamp() * 1000) if isinstance(value, datetime) else value


def _normalise_parameters(self: StateTaskServiceSfn, parameters: dict[str, Any], boto_service_name: Any = None,
                          service_action_name: Any = None) -> None:
    _patches.original(StateTaskServiceSfn, "_normalise_parameters")(self, parameters, boto_service_name,
                                                                    service_action_name)
    for key in list(parameters):
        parameters[key[0].lower() + key[1:]] = parameters.pop(key)


def _eval_service_task(self: StateTaskServiceSfn, env: Any, *args: Any, **kwargs: Any) -> None:
    _patches.original(StateTaskServiceSfn, "_eval_service_task")(self, env, *args, **kwargs)
    _pascal(env.stack[-1])
    _record_child(env)


def _normalise_response(self: StateTaskServiceSfn, response: Any, boto_service_name: Any = None,
                        service_action_name: Any = None) -> None:
    if isinstance(response, dict):
        _pascal(response)


def install() -> None:
    _patches.install(_patch)


def _patch(patches: Patches) -> None:
    for name, model in (("_normalise_parameters", _normalise_parameters), ("_eval_service_task", _eval_service_task),
                        ("_normalise_response", _normalise_response)):
        patches.replace(StateTaskServiceSfn, **{name: model})


def uninstall() -> None:
    _patches.undo()
    with _lock:
        _children.clear()
        _stopped.clear()
