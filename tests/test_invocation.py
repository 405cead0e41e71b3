"""One decorator around every handler (tasks/aws/invocation.py): throttling surfaces as the retryable AwsThrottled,
log keys do not leak from one invocation to the next, and an invocation's metrics are flushed once."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.faults import FaultInjector
from asg_optimizer.local.metrics_sink import metric_values
from asg_optimizer.local.seam import FakeContext
from stack.description import STACK
from tasks.aws.invocation import logged_metered_retryable, logger, metrics
from tasks.core.errors import AwsThrottled

HANDLER_MODULE_FLUSHES = ("flush_metrics", "log_metrics", "inject_lambda_context")


def _context(request_id: str) -> FakeContext:
    return FakeContext("asg-optimizer-test", "arn:aws:lambda:us-east-1:123456789012:function:test", 128,
                       aws_request_id=request_id)


def _throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, operation)


@pytest.mark.parametrize("function", STACK.functions, ids=lambda f: f.key)
def test_every_handler_wears_the_one_decorator_and_nothing_else(function: Any) -> None:
    module_name, _, name = function.handler.rpartition(".")
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    found = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    assert [ast.unparse(d) for d in found.decorator_list] == ["logged_metered_retryable"]
    # and no handler module flushes or wraps on its own: the decorator flushes once
    calls = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not calls & set(HANDLER_MODULE_FLUSHES), f"{module_name} uses {sorted(calls & set(HANDLER_MODULE_FLUSHES))}"


def test_a_throttled_call_surfaces_as_the_retryable_error() -> None:
    @logged_metered_retryable
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise _throttled("DescribeAutoScalingGroups")

    with pytest.raises(AwsThrottled, match="DescribeAutoScalingGroups: Throttling"):
        handler({}, _context("r-1"))


def test_any_other_aws_error_stays_what_it_is() -> None:
    @logged_metered_retryable
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "ValidationError", "Message": "no"}}, "UpdateAutoScalingGroup")

    with pytest.raises(ClientError, match="ValidationError"):
        handler({}, _context("r-1"))


def test_a_deployed_handler_throttled_past_boto_retries_fails_as_aws_throttled(aws: EmbeddedAws,
                                                                                make_group) -> None:
    make_group("web", desired=1, max_size=2)
    with FaultInjector() as faults:
        faults.fail("autoscaling", "DescribeAutoScalingGroups", "Throttling", times=100)
        answer = aws.client("lambda").invoke(FunctionName="asg-optimizer-scanner",
                                             Payload=json.dumps({"dry_run": True}).encode())
    assert answer.get("FunctionError")
    assert json.loads(answer["Payload"].read())["errorType"] == "AwsThrottled"


def test_log_keys_appended_in_one_invocation_do_not_leak_into_the_next() -> None:
    @logged_metered_retryable
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event.get("asg"):
            logger.append_keys(asg=event["asg"])
        return dict(logger.get_current_keys())

    first = handler({"asg": "web"}, _context("r-1"))
    second = handler({}, _context("r-2"))
    assert first["asg"] == "web" and first["function_request_id"] == "r-1"
    assert "asg" not in second and second["function_request_id"] == "r-2"
    handler({"asg": "web"}, _context("r-3"))
    assert "asg" not in handler({}, None)  # a direct call (tests, bench) clears them too


def test_an_invocations_metrics_are_flushed_once_returned_or_raised(aws: EmbeddedAws) -> None:
    @logged_metered_retryable
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        metrics.add_metric(name="HouseCounted", unit=MetricUnit.Count, value=1)
        if event.get("fail"):
            raise RuntimeError("after counting")
        return {}

    handler({}, _context("r-1"))
    assert metric_values("HouseCounted") == [({"service": "asg-optimizer"}, [1.0])]
    with pytest.raises(RuntimeError):
        handler({"fail": True}, _context("r-2"))
    assert metric_values("HouseCounted") == [({"service": "asg-optimizer"}, [1.0])] * 2


def test_an_invocation_that_counts_nothing_publishes_nothing(aws: EmbeddedAws) -> None:
    from asg_optimizer.local import metrics_sink

    @logged_metered_retryable
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {}

    before = len(metrics_sink.documents)
    handler({}, _context("r-1"))
    assert len(metrics_sink.documents) == before
