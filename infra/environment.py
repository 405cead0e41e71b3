"""The one place that turns the environment variable names a function declares (`Function.environment` in the
stack description) into deployed values. A name nobody maps here fails the deployment, naming the function."""

from __future__ import annotations

from infra.config import Settings
from infra.iam import Context
from stack.description import (
    COMMITMENTS,
    PAUSE_ALARMS,
    PAUSE_FAILURE_BUDGET,
    SAVINGS_PLAN_RESERVE_PER_HOUR,
    STATE_MACHINE_ARN_ENVIRONMENT,
    Function,
)


def values(ctx: Context) -> dict[str, str]:
    """Every variable a function may declare -> its deployed value, from the deterministic names of the stack
    (so no value waits on another resource): state machine ARNs and table names."""
    machines = {m.key for m in ctx.stack.state_machines}
    found = {name: ctx.machine_arn(key) for name, key in STATE_MACHINE_ARN_ENVIRONMENT.items() if key in machines}
    found |= {table.environment: table.name(ctx.scope.prefix) for table in ctx.stack.tables}
    return found


METRICS_NAMESPACE = "AsgOptimizer"
SERVICE_NAME = "asg-optimizer"


class UnknownEnvironment(ValueError):
    pass


def function_environment(ctx: Context, function: Function, settings: Settings) -> dict[str, str]:
    """Powertools settings, the configured extras, then the function's declared variables (which win)."""
    known = values(ctx) | {PAUSE_ALARMS: ",".join(settings.pause_alarms),
                           PAUSE_FAILURE_BUDGET: str(settings.pause_failure_budget),
                           COMMITMENTS: settings.commitments,
                           SAVINGS_PLAN_RESERVE_PER_HOUR: f"{settings.savings_plan_reserve_per_hour:g}"}
    unknown = [name for name in function.environment if name not in known]
    if unknown:
        raise UnknownEnvironment(
            f"function {function.key!r} needs environment variable(s) {', '.join(unknown)}, which "
            "infra/environment.py does not know how to set"
        )
    return {
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": settings.log_level,
        **settings.environment,
        **{name: known[name] for name in function.environment},
    }
