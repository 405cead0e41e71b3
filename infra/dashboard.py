"""The CloudWatch dashboard and alarms, as plain JSON/dicts over the stack's deterministic names.

Swap outcomes come from Step Functions' own metrics; skipped swaps, spot share and savings from the custom
metrics the handlers emit with Powertools (namespace METRICS_NAMESPACE); a test holds the two lists equal both
ways (every emitted metric drawn, every drawn metric emitted).
"""

from __future__ import annotations

import json
from typing import Any

from infra.environment import METRICS_NAMESPACE
from infra.names import Scope, dead_letter_queue_name
from stack.description import REPLACE, Stack
from tasks.core.pause import FAILED_SWAP_METRICS

PERIOD = 300
# Custom metrics (Powertools Metrics, namespace METRICS_NAMESPACE): each is emitted by the handler named beside it.
SWAPS_SKIPPED = "SwapsSkipped"  # tasks/validate.py: a refused swap, dimension AutoScalingGroup
NO_SPOT_CAPACITY = "NoSpotCapacity"  # tasks/launch_spot.py: the swap ended without a spot
SPOT_QUOTA_EXCEEDED = "SpotQuotaExceeded"  # tasks/launch_spot.py: the account's spot quota refused the launch
SPOT_SHARE = "SpotShare"  # tasks/scan.py: the opted-in fleet's InService capacity on spot (%), fleet-wide
HOURLY_SAVING = "HourlySavingUSD"  # tasks/launch_spot.py: per launched spot, dimension AutoScalingGroup
CUSTOM_METRICS = (SWAPS_SKIPPED, NO_SPOT_CAPACITY, SPOT_QUOTA_EXCEEDED, SPOT_SHARE, HOURLY_SAVING)
FAILED_METRICS = FAILED_SWAP_METRICS  # the failed-executions alarms watch what the pause's failure budget counts


def _metric_widget(title: str, region: str, metrics: list[list[Any]], *, x: int, y: int,
                   stat: str = "Sum", width: int = 12) -> dict[str, Any]:
    return {
        "type": "metric", "x": x, "y": y, "width": width, "height": 6,
        "properties": {"title": title, "region": region, "metrics": metrics, "stat": stat, "period": PERIOD,
                       "view": "timeSeries", "stacked": False},
    }


def _search(metric: str, stat: str) -> list[Any]:
    """One line per dimension set (per group where the metric has the AutoScalingGroup dimension)."""
    expression = f"SEARCH('Namespace=\"{METRICS_NAMESPACE}\" MetricName=\"{metric}\"', '{stat}', {PERIOD})"
    return [{"expression": expression, "id": metric.lower(), "label": metric}]


def dashboard_body(scope: Scope, stack: Stack) -> str:
    region = scope.region

    def executions(key: str) -> list[list[Any]]:
        arn = scope.state_machine_arn(stack.state_machine(key).name(scope.prefix))
        return [["AWS/States", name, "StateMachineArn", arn, {"label": label}] for name, label in (
            ("ExecutionsSucceeded", "succeeded"), ("ExecutionsFailed", "failed"),
            ("ExecutionsTimedOut", "timed out"), ("ExecutionsAborted", "aborted"))]

    errors = [["AWS/Lambda", "Errors", "FunctionName", f.name(scope.prefix)] for f in stack.functions]
    dead_letters = [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
                     dead_letter_queue_name(scope.prefix)]]
    widgets = [
        _metric_widget("Swaps", region, executions(REPLACE), x=0, y=0),
        _metric_widget("Swaps skipped", region, [_search(SWAPS_SKIPPED, "Sum"), _search(NO_SPOT_CAPACITY, "Sum"),
                                                  _search(SPOT_QUOTA_EXCEEDED, "Sum")],
                       x=12, y=0),
        _metric_widget("Spot share of the opted-in fleet (%)", region, [_search(SPOT_SHARE, "Average")], x=0, y=6,
                       stat="Average"),
        _metric_widget("Estimated savings added per ASG ($/h)", region, [_search(HOURLY_SAVING, "Sum")], x=12, y=6),
        _metric_widget("Function errors", region, errors, x=0, y=12),
        _metric_widget("Undelivered events (dead-letter queue)", region, dead_letters, x=12, y=12, stat="Maximum"),
    ]
    others = [m.key for m in stack.state_machines if m.key != REPLACE]
    widgets += [_metric_widget(f"Executions of {key}", region, executions(key), x=12 * (i % 2), y=18 + 6 * (i // 2))
                for i, key in enumerate(others)]
    return json.dumps({"widgets": widgets}, sort_keys=True)


def failed_executions_queries(machine_arn: str) -> list[dict[str, Any]]:
    """Failed + timed-out executions in one alarm (an abort is a person's decision, not a failure)."""
    queries: list[dict[str, Any]] = [
        {"id": name.lower(), "return_data": False, "metric": {
            "namespace": "AWS/States", "metric_name": name, "dimensions": {"StateMachineArn": machine_arn},
            "period": PERIOD, "stat": "Sum"}}
        for name in FAILED_METRICS
    ]
    total = " + ".join(f"FILL({q['id']}, 0)" for q in queries)
    queries.append({"id": "failed", "expression": total, "label": "failed or timed out", "return_data": True})
    return queries
