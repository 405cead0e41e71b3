"""ListExecutions is eventually consistent in AWS ("results are best effort and may not reflect very recent
updates"); moto lists an execution the moment it starts. The embedded AWS can hide executions younger than
`lag_seconds` from ListExecutions (DescribeExecution still finds them), so code that decides "nobody else is
working on this" from a listing is caught racing, as it would in an account."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from moto.core.utils import utcnow
from moto.stepfunctions.models import StepFunctionBackend

from asg_optimizer.local.patching import Patches, Patching


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

        patches.replace(StepFunctionBackend, list_executions=list_executions)


def _naive(at: Any) -> Any:
    return at.replace(tzinfo=None) if getattr(at, "tzinfo", None) else at
