"""What AWS documents as transient, forced deterministically (by call count, not by time): EC2's eventual
consistency for a just-launched instance, and an Auto Scaling group's scaling activity in flight."""

from __future__ import annotations

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from tests.conftest import FAST
from tests.workflow_helpers import cause, instances, launched_by, members, settings, state_of, states_entered


@pytest.mark.long
def test_just_launched_instance_not_found_is_not_ready_yet_and_cleanup_still_finds_it(
        aws: EmbeddedAws, make_group) -> None:
    """EC2: DescribeInstances/DescribeInstanceStatus may answer InvalidInstanceID.NotFound for an instance launched
    a moment ago, and a tag filter may miss it. CheckSpot waits; Cleanup does not lose the spot it launched."""
    raw = make_group("web", desired=1, max_size=2)
    other = make_group("api", desired=1, max_size=2)
    aws.ec2_model.visibility.lag_calls = 2  # the spot's first two describes do not see it
    arn = aws.start_swap("web", raw["Instances"][0]["InstanceId"], timing=FAST)
    described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", cause(described)
    assert states_entered(aws, arn).count("CheckSpot") >= 3  # NotFound twice: not ready yet, not a failure

    before = settings(aws, "api")
    aws.ec2_model.visibility.lag_calls = 3  # CheckSpot's poll, Cleanup's tag search and its lookup by id
    arn = aws.start_swap("api", other["Instances"][0]["InstanceId"], timing={**FAST, "boot_max_polls": 1})
    described = aws.wait(arn)
    assert described["status"] == "FAILED" and described["error"] == "SpotNotReady"
    assert states_entered(aws, arn)[-3:] == ["Cleanup", "RestoreAfterFailure", "SwapFailed"]
    [spot] = launched_by(aws, described["name"])
    assert state_of(aws, spot["InstanceId"]) in ("shutting-down", "terminated")  # not left running, unowned
    assert settings(aws, "api") == before
    assert [i for i in instances(aws, instance_state_name="running") if i["InstanceId"] == spot["InstanceId"]] == []


def test_scaling_activity_in_progress_is_transient_and_retried_like_throttling(aws: EmbeddedAws, make_group) -> None:
    """Auto Scaling refuses TerminateInstanceInAutoScalingGroup and UpdateAutoScalingGroup with
    ScalingActivityInProgress while an activity of the group is in flight: retry it with backoff."""
    raw = make_group("web", desired=2, max_size=2)  # full: MaxSize raised, then put back by an update
    aws.autoscaling_model.activity_calls = 1
    on_demand = raw["Instances"][0]["InstanceId"]
    arn = aws.start_swap("web", on_demand, timing=FAST)
    described = aws.wait(arn)
    assert described["status"] == "SUCCEEDED", cause(described)
    assert states_entered(aws, arn)[-1] == "Swapped"
    refused = aws.autoscaling_model.refused_in_activity
    assert "terminate_instance_in_auto_scaling_group web" in refused  # after the attach, as AWS would
    assert on_demand not in members(aws, "web") or members(aws, "web")[on_demand].startswith("Terminating")
    assert settings(aws, "web")["max"] == 2
