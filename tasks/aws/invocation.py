"""What every handler needs around one invocation, in one decorator: `@logged_metered_retryable`.

- logged: the Lambda context's keys on every log line, and the keys a handler appended cleared at the start of
  the next invocation (a warm container serves many; keys must not leak from one to the next);
- metered: the invocation's metrics flushed once when it ends, raised or returned (Metrics' `log_metrics`
  semantics; an invocation that counted nothing publishes nothing and raises nothing);
- retryable: a throttled or contended AWS call surfaces as `AwsThrottled`, which the state machines retry;
- configured: the function's settings (tasks/aws/settings.py HANDLER_SETTINGS) are read and checked first, so a
  missing or garbled variable fails the invocation before any AWS call, naming the variable and its value.

Handlers log and count through the `logger` and `metrics` here (Powertools shares one metric set per process
anyway); a handler module never flushes or decorates on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.middleware_factory import lambda_handler_decorator

from tasks.aws.clients import throttling_as_retryable
from tasks.aws.settings import HANDLER_SETTINGS

logger = Logger()
metrics = Metrics()

# A handler takes its step's input contract (tasks.core.steps), a TypedDict, or any other event, and returns a
# mapping Lambda serializes: the bound accepts every event type, so each handler keeps its own.
Handler = TypeVar("Handler", bound=Callable[[Any, Any], Mapping[str, Any]])


def _invocation(handler: Callable[[Any, Any], Mapping[str, Any]], event: dict[str, Any],
                context: Any) -> Mapping[str, Any]:
    settings = HANDLER_SETTINGS.get(f"{handler.__module__}.{handler.__qualname__}")
    with throttling_as_retryable():
        try:
            if settings is not None:
                settings.from_env()
            if context is None:  # called directly (a test, the bench): no Lambda context, the keys still cleared
                logger.clear_state()
                return handler(event, context)
            return logger.inject_lambda_context(handler, clear_state=True)(event, context)
        finally:
            # An empty set is left as it is, not cleared: in the embedded AWS handlers share the process, and
            # clearing would drop the dimension another invocation has added and not yet counted under.
            if metrics.metric_set:
                metrics.flush_metrics()


_middleware = lambda_handler_decorator(_invocation)


def logged_metered_retryable(handler: Handler) -> Handler:
    """Decorate a Lambda handler: log context per invocation, metrics flushed once, throttling retryable."""
    return cast(Handler, _middleware(handler))
