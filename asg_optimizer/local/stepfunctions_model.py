"""Step Functions as AWS runs it, where moto differs.

- ListExecutions is eventually consistent in AWS ("results are best effort and may not reflect very recent
  updates"); moto lists an execution the moment it starts. The embedded AWS can hide executions younger than
  `lag_seconds` from ListExecutions (DescribeExecution still finds them), so code that decides "nobody else is
  working on this" from a listing is caught racing, as it would in an account.
- AWS publishes each execution's end as a CloudWatch metric (namespace AWS/States, dimension StateMachineArn:
  ExecutionsSucceeded, ExecutionsFailed, ExecutionsTimedOut, ExecutionsAborted, 1 per execution, Count); moto
  publishes none. Here each execution's end puts its datapoint, stamped as it ends, into moto's
  CloudWatch, which the failure budget (tasks/aws/pause_state.py) reads. AWS has it within about a minute;
  here it is there before the end shows in DescribeExecution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.utils import utcnow
from moto.stepfunctions.models import StepFunctionBackend
from moto.stepfunctions.parser.asl.eval.program_state import (
    ProgramEnded,
    ProgramError,
    ProgramStopped,
    ProgramTimedOut,
)
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

from asg_optimizer.local.patching import Patches, Patching

NAMESPACE = "AWS/States"
END_METRICS: dict[type, str] = {ProgramEnded: "ExecutionsSucceeded", ProgramError: "ExecutionsFailed",
                                ProgramTimedOut: "ExecutionsTimedOut", ProgramStopped: "ExecutionsAborted"}


def publish_end(communication: BaseExecutionWorkerCommunication) -> None:
    """The execution's end as AWS/States counts it, put before moto makes the end visible (DescribeExecution,
    ListExecutions): whoever sees the execution ended finds its metric too."""
    execution = communication.execution
    worker = execution.exec_worker
    name = END_METRICS.get(type(worker.env.program_state())) if worker is not None and worker.env else None
    if name is None:
        return
    cloudwatch_backends[execution.account_id][execution.region_name].put_metric_data(NAMESPACE, [{
        "MetricName": name, "Value": 1.0, "Unit": "Count", "Timestamp": utcnow(),
        "Dimensions": [{"Name": "StateMachineArn", "Value": execution.state_machine_arn}]}])


@dataclass
class StepFunctionsModel(Patching):
    lag_seconds: float = 0.0
    _patches: Patches = field(default_factory=Patches)

    def _patch(self, patches: Patches) -> None:
        model = self

        def list_executions(backend: StepFunctionBackend, *args: Any, **kwargs: Any) -> Any:
            listed = patches.original(StepFunctionBackend, "list_executions")(backend, *args, **kwargs)
            if model.lag_seconds <= 0:
                return listed
            visible_before = utcnow() - timedelta(seconds=model.lag_seconds)
            if isinstance(listed, tuple):  # moto's paginator: (page, next token)
                page, token = listed
                return [e for e in page if _naive(e.start_date) <= visible_before], token
            return [e for e in listed if _naive(e.start_date) <= visible_before]

        def terminated(communication: BaseExecutionWorkerCommunication) -> None:
            publish_end(communication)
            patches.original(BaseExecutionWorkerCommunication, "terminated")(communication)

        patches.replace(StepFunctionBackend, list_executions=list_executions)
        patches.replace(BaseExecutionWorkerCommunication, terminated=terminated)


def _naive(at: Any) -> Any:
    return at.replace(tzinfo=None) if getattr(at, "tzinfo", None) else at
