"""CloudWatch DescribeAlarms as AWS answers it, for the fleet-wide pause and the rollout's alarm gate.

moto 5.2's DescribeAlarms applies only the first of its filters (ActionPrefix, else AlarmNamePrefix, else
AlarmNames, else StateValue) and checks no limit. AWS (API reference, DescribeAlarms):
- every filter given applies together (AlarmNames with StateValue returns the named alarms in that state);
- AlarmNames holds at most 100 names; AlarmNamePrefix with AlarmNames is refused;
- composite alarms are returned only when AlarmTypes asks for them, and only to a caller whose grant is on `*`
  (the functions' is scoped to this region's alarms, infra/iam.py). moto 5.2 cannot create composite alarms
  (no PutCompositeAlarm), so none are ever answered here.
Alarm states are set with moto's SetAlarmState (tests, `local serve` users), as in AWS.
"""

from __future__ import annotations

from moto.cloudwatch.exceptions import InvalidParameterCombination, ValidationError
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

from asg_optimizer.local.patching import Patches

MAX_ALARM_NAMES = 100
_patches = Patches()


def describe_alarms(self: CloudWatchResponse) -> ActionResult:
    names = self._get_param("AlarmNames", []) or []
    prefix = self._get_param("AlarmNamePrefix")
    if len(names) > MAX_ALARM_NAMES:
        raise ValidationError(f"1 validation error detected: Value at 'alarmNames' failed to satisfy constraint: "
                              f"Member must have length less than or equal to {MAX_ALARM_NAMES}")
    if names and prefix:
        raise InvalidParameterCombination("AlarmNamePrefix and AlarmNames cannot be specified together")
    state = self._get_param("StateValue")
    action_prefix = self._get_param("ActionPrefix")
    alarms = [
        a for a in self.cloudwatch_backend.alarms.values()
        if (not names or a.name in names) and (not prefix or a.name.startswith(prefix))
        and (not state or a.state_value == state)
        and (not action_prefix or any(str(x).startswith(action_prefix) for x in a.alarm_actions))
    ]
    alarms.sort(key=lambda a: a.name)  # AWS lists alarms by name
    metric = "MetricAlarm" in (self._get_param("AlarmTypes", []) or ["MetricAlarm"])
    return ActionResult({"MetricAlarms": [a for a in alarms if a.rule is None] if metric else [],
                         "CompositeAlarms": []})


def install() -> None:
    _patches.install(lambda p: p.replace(CloudWatchResponse, describe_alarms=describe_alarms))


def uninstall() -> None:
    _patches.undo()
