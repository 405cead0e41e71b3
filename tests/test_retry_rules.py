"""Step Functions' error names for Lambda tasks, retried as AWS advises where a re-run is safe (every swap task
is idempotent: client token and stored request, hold tags, membership and lifecycle checks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.faults import FaultInjector
from asg_optimizer.local.invariants import InvariantChecker
from tests.conftest import FAST
from tests.workflow_helpers import launched_by, states_entered

MACHINES = Path(__file__).parent.parent / "statemachines"
# AWS: "Handle Lambda service exceptions" (ClientExecutionTimeoutException among them); a function's timeout is
# Sandbox.Timedout on current runtimes (Lambda.Unknown on older ones); a Task's own timeout is States.Timeout.
RETRIED = {"Lambda.ClientExecutionTimeoutException", "Lambda.ServiceException", "Lambda.AWSLambdaException",
           "Lambda.SdkClientException", "Lambda.TooManyRequestsException", "Lambda.Unknown", "Sandbox.Timedout",
           "States.Timeout"}


def test_lambda_client_execution_timeout_and_sandbox_timedout_are_retried_on_every_task(
        aws: EmbeddedAws, make_group) -> None:
    """A task whose Lambda timed out (Sandbox.Timedout) or whose invoke timed out
    (Lambda.ClientExecutionTimeoutException) after its AWS call took effect is re-run, and the re-run is a no-op."""
    for machine in ("replace_instance", "spot_interruption"):
        states = json.loads((MACHINES / f"{machine}.asl.json").read_text())["States"]
        for name, state in states.items():
            if state["Type"] == "Task":
                retried = {e for retrier in state.get("Retry", []) for e in retrier["ErrorEquals"]}
                assert retried >= RETRIED, (machine, name, sorted(RETRIED - retried))

    raw = make_group("web", desired=2, max_size=2)  # full: the attach holds the group (tags, MaxSize)
    with InvariantChecker(["web"]) as check, FaultInjector() as faults:
        faults.crash_after("ec2", "CreateFleet", error_type="Sandbox.Timedout")
        faults.crash_after("autoscaling", "AttachInstances", error_type="Lambda.ClientExecutionTimeoutException")
        arn = aws.start_swap("web", raw["Instances"][0]["InstanceId"], timing=FAST)
        described = aws.wait(arn)
    assert check.finish() == []
    assert described["status"] == "SUCCEEDED", described.get("cause")
    path = states_entered(aws, arn)
    assert path[-1] == "Swapped" and "Cleanup" not in path
    assert len(launched_by(aws, described["name"])) == 1


@pytest.mark.parametrize("error_type", ["Bogus"])
def test_fault_injector_refuses_an_unknown_crash_type(error_type: str) -> None:
    with pytest.raises(ValueError, match="unknown crash type 'Bogus'"):
        FaultInjector().crash_after("ec2", "CreateFleet", error_type=error_type)
