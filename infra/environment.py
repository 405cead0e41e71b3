"""The one place that turns the environment variable names a function declares (`Function.environment` in the
stack description) into deployed values. A name nobody maps here fails the deployment, naming the function."""

from __future__ import annotations

from collections.abc import Callable

from asg_optimizer.stack import REPLACE, REPLACE_STATE_MACHINE_ARN, Function
from infra.config import Settings
from infra.iam import Context

# name -> value, from the deterministic names of the stack (so no value waits on another resource).
VALUES: dict[str, Callable[[Context], str]] = {
    REPLACE_STATE_MACHINE_ARN: lambda ctx: ctx.machine_arn(REPLACE),
}
METRICS_NAMESPACE = "AsgOptimizer"
SERVICE_NAME = "asg-optimizer"


class UnknownEnvironment(ValueError):
    pass


def function_environment(ctx: Context, function: Function, settings: Settings) -> dict[str, str]:
    """Powertools settings, the configured extras, then the function's declared variables (which win)."""
    unknown = [name for name in function.environment if name not in VALUES]
    if unknown:
        raise UnknownEnvironment(
            f"function {function.key!r} needs environment variable(s) {', '.join(unknown)}, which "
            "infra/environment.py VALUES does not know how to set"
        )
    return {
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": settings.log_level,
        **settings.environment,
        **{name: VALUES[name](ctx) for name in function.environment},
    }
