"""The deployed IAM's opt-in condition, enforced on the functions' Auto Scaling calls in the embedded AWS.

In an account, every group-changing call the functions make is allowed only on groups tagged
`AsgOptimiser=true` (`infra/iam.py`: `autoscaling:ResourceTag/AsgOptimiser = true`). moto checks no IAM, so a
swap of a group that is not opted in would succeed here and fail in AWS. This model answers such a call from a
handler (the seam marks the thread) with AccessDenied, as IAM does; calls from tests, the CLI or a person are not
a function's and pass. `GROUP_CHANGING_ACTIONS` is checked against the deployed policies by a Pulumi test.
Limit: under `local serve` the handlers' calls arrive over HTTP on the server's threads, which the seam does not
mark, so there the condition is not enforced (Validate refuses a group that is not opted in before any change).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError
from moto.autoscaling.responses import AutoScalingResponse

from asg_optimizer.local.interleaving import running_function
from asg_optimizer.local.patching import Patches
from tasks.core.tags import OPT_IN, is_opted_in

# Operation -> the responses method moto answers it with; every action infra/iam.py grants on opted-in groups only.
GROUP_CHANGING_ACTIONS = {
    "AttachInstances": "attach_instances",
    "ResumeProcesses": "resume_processes",
    "SetDesiredCapacity": "set_desired_capacity",
    "SuspendProcesses": "suspend_processes",
    "TerminateInstanceInAutoScalingGroup": "terminate_instance_in_auto_scaling_group",
    "UpdateAutoScalingGroup": "update_auto_scaling_group",
}
_patches = Patches()


class AccessDenied(AutoscalingClientError):
    code = "AccessDenied"


def _groups_named(response: AutoScalingResponse, operation: str) -> list[str]:
    if operation == "TerminateInstanceInAutoScalingGroup":
        instance_id = response._get_param("InstanceId")
        return [g.name for g in response.autoscaling_backend.autoscaling_groups.values()
                if any(s.instance.id == instance_id for s in g.instance_states)]
    if operation in ("CreateOrUpdateTags", "DeleteTags"):
        return sorted({t.get("ResourceId", "") for t in response._get_param("Tags", [])})
    return [response._get_param("AutoScalingGroupName")]


def _guard(operation: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(response: AutoScalingResponse) -> Any:
        function = running_function()
        if function is not None:
            groups = response.autoscaling_backend.autoscaling_groups
            for name in _groups_named(response, operation):
                group = groups.get(name)
                tags = {t["Key"]: t.get("Value", "") for t in group.tags} if group is not None else {}
                if group is not None and not is_opted_in(tags):
                    raise AccessDenied(
                        f"User: arn:aws:sts::123456789012:assumed-role/{function}/{function} is not authorized to "
                        f"perform: autoscaling:{operation} on resource: autoScalingGroupName/{name} because no "
                        f"identity-based policy allows it (condition autoscaling:ResourceTag/{OPT_IN} = true)")
        return original(response)

    return guarded


def install() -> None:
    _patches.install(_patch)


def _patch(patches: Patches) -> None:
    for operation, method in GROUP_CHANGING_ACTIONS.items():
        patches.replace(AutoScalingResponse, **{method: _guard(operation, getattr(AutoScalingResponse, method))})


def uninstall() -> None:
    _patches.undo()
