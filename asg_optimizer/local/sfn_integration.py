"""The Step Functions service integration (`arn:aws:states:::states:startExecution.sync:2`) as AWS runs it.

moto 5.2's interpreter hands the state's Parameters to boto3 as written (`StateMachineArn`, `Name`, `Input`),
where boto3 wants its own member names (`stateMachineArn`), so every StartExecution task fails with
`States.Runtime` ('StateMachineArn'); it then reads the answer in PascalCase (`ExecutionArn`) although boto3's
is camelCase. AWS takes the API's PascalCase names and answers in them, dates as epoch milliseconds (the
`.sync:2` result is DescribeExecution with `Input`/`Output` as JSON). This model converts both ways; the
interpreter's own polling of the child (`.sync`, `.sync:2`) is left as it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)

from asg_optimizer.local.patching import Patches

_patches = Patches()


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
