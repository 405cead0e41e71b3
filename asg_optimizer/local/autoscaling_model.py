"""What moto lacks that the scanner depends on (Auto Scaling, and one EC2 read), modeled in the embedded AWS.

- Instance refreshes: moto 5.2 has no StartInstanceRefresh / DescribeInstanceRefreshes / CancelInstanceRefresh
  (NotImplementedError). Modeled as records only: a refresh starts `InProgress` and stays so until cancelled
  (`Cancelled`) or `finish_refresh` marks it `Successful`; instances are not replaced. A second start while one
  is in progress fails with InstanceRefreshInProgress, as in AWS.
- HealthCheckGracePeriod: moto's CreateAutoScalingGroup turns 0 (and an omitted value) into 300; AWS keeps 0
  and defaults to 0. The grace period decides when the scanner may pick an instance, so 0 must stay 0.
- Scaling activities: AWS refuses TerminateInstanceInAutoScalingGroup and UpdateAutoScalingGroup with
  ScalingActivityInProgress while a scaling activity of the group is in flight. moto never does. Modeled by call
  count, not time (so tests force it whatever the machine's speed): with `activity_calls = N`, a call that starts
  an activity (AttachInstances, TerminateInstanceInAutoScalingGroup, SetDesiredCapacity, an UpdateAutoScalingGroup
  that changes sizes) opens a window in which the group's next N Terminate/Update calls are refused.
- DescribeInstances with explicit InstanceIds: AWS returns every one of them (up to 1,000) in one response and
  refuses MaxResults with ids; moto pages them 100 reservations at a time, which would make the scanner's call
  count (and the bench) depend on how moto groups instances into reservations.
- Tags: an Auto Scaling group holds at most 50 tags; CreateOrUpdateTags beyond that fails with LimitExceeded.
  moto has no limit.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
from moto.autoscaling.models import AutoScalingBackend
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult
from moto.ec2.responses.instances import InstanceResponse

from asg_optimizer.local.patching import Patches, Patching

ACTIVE_REFRESH = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")


class InstanceRefreshInProgress(AutoscalingClientError):
    code = "InstanceRefreshInProgress"


class ActiveInstanceRefreshNotFound(AutoscalingClientError):
    code = "ActiveInstanceRefreshNotFound"


class LimitExceeded(AutoscalingClientError):
    code = "LimitExceeded"


MAX_GROUP_TAGS = 50


class ScalingActivityInProgress(AutoscalingClientError):
    code = "ScalingActivityInProgress"


ACTIVITY_STARTERS = ("attach_instances", "terminate_instance_in_auto_scaling_group", "set_desired_capacity",
                     "update_auto_scaling_group")
REFUSED_IN_ACTIVITY = ("terminate_instance_in_auto_scaling_group", "update_auto_scaling_group")


@dataclass
class AutoScalingModel(Patching):
    refreshes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # group name -> newest first
    activity_calls: int = 0  # Terminate/Update calls refused after each activity-starting call (0: off)
    refused_in_activity: list[str] = field(default_factory=list)  # "Operation group" per refusal, for tests
    _in_activity: dict[str, int] = field(default_factory=dict)  # group name -> calls still refused
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _patches: Patches = field(default_factory=Patches)

    def start_refresh(self, group_name: str, backend: AutoScalingBackend) -> str:
        if group_name not in backend.autoscaling_groups:
            raise ValidationError(f"AutoScalingGroup name not found - AutoScalingGroup '{group_name}' not found")
        with self._lock:
            history = self.refreshes.setdefault(group_name, [])
            if history and history[0]["Status"] in ACTIVE_REFRESH:
                raise InstanceRefreshInProgress(
                    f"An Instance Refresh is already in progress and blocks the execution of this Instance Refresh."
                    f" ({history[0]['InstanceRefreshId']})"
                )
            refresh_id = str(uuid.uuid4())
            history.insert(0, {
                "InstanceRefreshId": refresh_id, "AutoScalingGroupName": group_name, "Status": "InProgress",
                "StartTime": datetime.now(UTC), "PercentageComplete": 0,
                "InstancesToUpdate": len(backend.autoscaling_groups[group_name].instance_states),
            })
            return refresh_id

    def cancel_refresh(self, group_name: str) -> str:
        with self._lock:
            history = self.refreshes.get(group_name, [])
            if not history or history[0]["Status"] not in ACTIVE_REFRESH:
                raise ActiveInstanceRefreshNotFound("No in progress or pending Instance Refresh found for "
                                                    f"Auto Scaling group {group_name}")
            history[0].update(Status="Cancelled", EndTime=datetime.now(UTC))
            return str(history[0]["InstanceRefreshId"])

    def finish_refresh(self, group_name: str) -> None:
        """Test/demo control: the group's active refresh completes."""
        with self._lock:
            latest = self.refreshes[group_name][0]
            latest.update(Status="Successful", EndTime=datetime.now(UTC), PercentageComplete=100,
                          InstancesToUpdate=0)

    def describe(self, group_name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.refreshes.get(group_name, [])]

    def _group_of(self, operation: str, response: AutoScalingResponse) -> str | None:
        group = response._get_param("AutoScalingGroupName")
        if group is None and operation == "terminate_instance_in_auto_scaling_group":
            instance_id = response._get_param("InstanceId")
            group = next((name for name, g in response.autoscaling_backend.autoscaling_groups.items()
                          if any(s.instance.id == instance_id for s in g.instance_states)), None)
        return group

    def _refuse_in_activity(self, operation: str, group: str | None) -> None:
        if group is None or operation not in REFUSED_IN_ACTIVITY:
            return
        with self._lock:
            if self._in_activity.get(group, 0) > 0:
                self._in_activity[group] -= 1
                self.refused_in_activity.append(f"{operation} {group}")
                raise ScalingActivityInProgress(
                    f"Scaling activity is in progress and blocks this action for Auto Scaling group {group}.")

    def _activity_started(self, operation: str, group: str | None, response: AutoScalingResponse) -> None:
        sizes = ("DesiredCapacity", "MinSize", "MaxSize")
        if group is None or self.activity_calls <= 0:
            return
        if operation != "update_auto_scaling_group" or any(k in response.data for k in sizes):
            with self._lock:
                self._in_activity[group] = self.activity_calls

    def _patch(self, patches: Patches) -> None:
        model, original = self, patches.original

        def create_or_update_tags(backend: AutoScalingBackend, tags: list[dict[str, str]]) -> None:
            for name in {t["ResourceId"] for t in tags}:
                keys = {t["Key"] for t in backend.autoscaling_groups[name].tags}
                keys |= {t["Key"] for t in tags if t["ResourceId"] == name}
                if len(keys) > MAX_GROUP_TAGS:
                    raise LimitExceeded(f"The number of tags for Auto Scaling group {name} would be {len(keys)}; "
                                        f"the limit is {MAX_GROUP_TAGS}")
            original(AutoScalingBackend, "create_or_update_tags")(backend, tags)

        def guarded(name: str) -> Any:
            def call(response: AutoScalingResponse) -> Any:
                group = model._group_of(name, response)
                model._refuse_in_activity(name, group)
                result = original(AutoScalingResponse, name)(response)
                model._activity_started(name, group, response)
                return result

            return call

        for name in ACTIVITY_STARTERS:
            patches.replace(AutoScalingResponse, **{name: guarded(name)})

        def describe_instances(response: InstanceResponse) -> Any:
            ids = response._get_param("InstanceIds", [])
            if not ids or "MaxResults" in response.data:  # moto's own answer (or its InvalidParameterCombination)
                return original(InstanceResponse, "describe_instances")(response)
            response.error_on_dryrun()
            reservations = response.ec2_backend.get_reservations_by_instance_ids(
                ids, filters=response._filters_from_querystring()
            )
            return ActionResult({"Reservations": reservations, "NextToken": None})

        def create_auto_scaling_group(backend: AutoScalingBackend, *args: Any, **kwargs: Any) -> Any:
            group = original(AutoScalingBackend, "create_auto_scaling_group")(backend, *args, **kwargs)
            group.health_check_grace_period = int(kwargs.get("health_check_period") or 0)
            return group

        def start_instance_refresh(response: AutoScalingResponse) -> ActionResult:
            name = response._get_param("AutoScalingGroupName")
            return ActionResult({"InstanceRefreshId": model.start_refresh(name, response.autoscaling_backend)})

        def cancel_instance_refresh(response: AutoScalingResponse) -> ActionResult:
            name = response._get_param("AutoScalingGroupName")
            return ActionResult({"InstanceRefreshId": model.cancel_refresh(name)})

        def describe_instance_refreshes(response: AutoScalingResponse) -> ActionResult:
            found = model.describe(response._get_param("AutoScalingGroupName"))
            wanted = response._get_param("InstanceRefreshIds") or []
            if wanted:
                found = [r for r in found if r["InstanceRefreshId"] in wanted]
            limit = response._get_int_param("MaxRecords") or 50
            return ActionResult({"InstanceRefreshes": found[:limit]})

        patches.replace(AutoScalingBackend, create_auto_scaling_group=create_auto_scaling_group,
                                            create_or_update_tags=create_or_update_tags)
        patches.replace(InstanceResponse, describe_instances=describe_instances)
        patches.add(AutoScalingResponse, start_instance_refresh=start_instance_refresh,
                                         cancel_instance_refresh=cancel_instance_refresh,
                                         describe_instance_refreshes=describe_instance_refreshes)
