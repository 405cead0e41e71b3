"""The Auto Scaling instance lifecycle that moto skips: launch and termination lifecycle hooks, and the wait for
load-balancer draining before a member is terminated (moto detaches and terminates at once).

- Launch: a group with an `autoscaling:EC2_INSTANCE_LAUNCHING` hook puts each instance *it launches* in
  `Pending:Wait` until CompleteLifecycleAction (CONTINUE: InService, then registered with its load balancers;
  ABANDON: terminated, and the group launches another) or the hook's HeartbeatTimeout (its DefaultResult,
  ABANDON unless set). AttachInstances skips launch hooks, as in AWS ("lifecycle hooks do not apply when you
  attach or detach instances"). A pending instance counts toward desired capacity.
- Termination through the group (TerminateInstanceInAutoScalingGroup) of a member of a group with load
  balancers or an `autoscaling:EC2_INSTANCE_TERMINATING` hook: `Terminating` while it is deregistered and drains
  (the longest deregistration delay of the group's load balancers), then `Terminating:Wait` for each
  termination hook (until CompleteLifecycleAction, either result, or the timeout), then the instance is
  terminated and leaves the group. Desired drops at the call when ShouldDecrementDesiredCapacity is set;
  otherwise the group launches a replacement at once.
- AttachInstances raises desired by the number attached and refuses to pass MaxSize, judged on desired capacity
  (moto counts every member, so a member still draining would raise desired by two), with AWS's ValidationError
  ("... To attach 1 instance, please update the AutoScalingGroup sizes appropriately."; moto answers the
  retryable ResourceContention, kinder than AWS).
- CompleteLifecycleAction / RecordLifecycleActionHeartbeat (moto has neither) by instance id or token; with no
  instance waiting on that hook: ValidationError "No active Lifecycle Action found with instance ID ...".
  PutLifecycleHook refuses a HeartbeatTimeout outside 30-7200 s and a DefaultResult other than
  CONTINUE/ABANDON.

Time is the embedded AWS's clock (AWS seconds); transitions are applied at the start of every Auto Scaling and
load-balancer call, so every reader sees the state AWS would report at that moment.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.autoscaling.exceptions import ValidationError
from moto.autoscaling.models import (
    ASG_NAME_TAG,
    AutoScalingBackend,
    FakeAutoScalingGroup,
    InstanceState,
    TerminateInstanceActivity,
)
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.elb.responses import ELBResponse
from moto.elbv2.responses import ELBV2Response

from asg_optimizer.local.clock import Clock, RealClock
from asg_optimizer.local.load_balancer_model import LoadBalancerModel
from asg_optimizer.local.patching import Patches, Patching

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
LEAVING_STATES = ("Terminating", "Terminating:Wait", "Terminating:Proceed", "Detaching", "Detached")


@dataclass
class _Action:
    """One hook holding one instance in a wait state."""

    hook: str
    token: str
    deadline: float
    heartbeat: int
    default_result: str
    result: str | None = None


@dataclass
class _Progress:
    group: str
    phase: str  # "launch-wait" | "draining" | "terminate-wait"
    until: float = 0.0  # end of draining
    actions: list[_Action] = field(default_factory=list)


@dataclass
class InstanceLifecycleModel(Patching):
    load_balancers: LoadBalancerModel
    clock: Clock = field(default_factory=RealClock)
    progress: dict[str, _Progress] = field(default_factory=dict)  # instance id -> where it is in its lifecycle
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _patches: Patches = field(default_factory=Patches)
    _backend: AutoScalingBackend | None = None

    # --- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def hooks(backend: AutoScalingBackend, group_name: str, transition: str) -> list[Any]:
        return [h for h in backend.lifecycle_hooks.values()
                if h.auto_scaling_group_name == group_name and h.lifecycle_transition == transition]

    def _actions(self, hooks: list[Any]) -> list[_Action]:
        now = self.clock.now()
        return [_Action(h.name, str(uuid.uuid4()), now + int(h.heartbeat_timeout), int(h.heartbeat_timeout),
                        str(h.default_result)) for h in hooks]

    @staticmethod
    def _state(group: FakeAutoScalingGroup, instance_id: str) -> InstanceState | None:
        return next((s for s in group.instance_states if s.instance.id == instance_id), None)

    # --- transitions ---------------------------------------------------------------------------------------
    def tick(self, backend: AutoScalingBackend) -> None:
        """Apply every transition that is due at the clock's now."""
        now = self.clock.now()
        with self._lock:
            for instance_id, progress in list(self.progress.items()):
                group = backend.autoscaling_groups.get(progress.group)
                state = self._state(group, instance_id) if group else None
                if group is None or state is None:
                    self.progress.pop(instance_id, None)
                    continue
                for action in progress.actions:
                    if action.result is None and now >= action.deadline:
                        action.result = action.default_result
                if progress.phase == "launch-wait":
                    self._launch_step(backend, group, state, progress)
                elif progress.phase == "draining" and now >= progress.until:
                    hooks = self.hooks(backend, group.name, TERMINATING)
                    if hooks:
                        progress.phase, progress.actions = "terminate-wait", self._actions(hooks)
                        state.lifecycle_state = "Terminating:Wait"
                    else:
                        self._finish_termination(backend, group, state)
                elif progress.phase == "terminate-wait":
                    done = all(a.result for a in progress.actions)
                    if done or any(a.result == "ABANDON" for a in progress.actions):
                        self._finish_termination(backend, group, state)

    def _launch_step(self, backend: AutoScalingBackend, group: FakeAutoScalingGroup, state: InstanceState,
                     progress: _Progress) -> None:
        if any(a.result == "ABANDON" for a in progress.actions):
            self.progress.pop(state.instance.id, None)
            group.instance_states.remove(state)
            backend.ec2_backend.terminate_instances([state.instance.id])
            group.set_desired_capacity(group.desired_capacity)  # the group launches another
        elif all(a.result == "CONTINUE" for a in progress.actions):
            self.progress.pop(state.instance.id, None)
            state.lifecycle_state = "InService"
            self.load_balancers.sync_group(backend, group.name)

    def _finish_termination(self, backend: AutoScalingBackend, group: FakeAutoScalingGroup,
                            state: InstanceState) -> None:
        instance_id = state.instance.id
        self.progress.pop(instance_id, None)
        state.lifecycle_state = "Terminating:Proceed"
        group.instance_states.remove(state)
        backend.ec2_backend.delete_tags([instance_id], {ASG_NAME_TAG: group.name})
        backend.ec2_backend.terminate_instances([instance_id])

    def launched(self, group: FakeAutoScalingGroup, states: list[InstanceState]) -> None:
        """The group just launched these: hold each in Pending:Wait while the group has launch hooks."""
        hooks = self.hooks(group.autoscaling_backend, group.name, LAUNCHING)
        if not hooks:
            return
        with self._lock:
            for state in states:
                state.lifecycle_state = "Pending:Wait"
                self.progress[state.instance.id] = _Progress(group.name, "launch-wait", actions=self._actions(hooks))

    def _moto_terminate(self, backend: AutoScalingBackend, instance_id: str, should_decrement: bool) -> Any:
        return self._patches.original(AutoScalingBackend, "terminate_instance")(backend, instance_id, should_decrement)

    def terminate(self, backend: AutoScalingBackend, instance_id: str, should_decrement: bool) -> Any:
        """TerminateInstanceInAutoScalingGroup: drain, run termination hooks, then terminate."""
        group = next((g for g in backend.autoscaling_groups.values() if self._state(g, instance_id)), None)
        if group is None:
            return self._moto_terminate(backend, instance_id, should_decrement)  # moto's own error
        state = self._state(group, instance_id)
        assert state is not None
        has_lb = bool(group.target_group_arns or group.load_balancer_names)
        if not has_lb and not self.hooks(backend, group.name, TERMINATING):
            return self._moto_terminate(backend, instance_id, should_decrement)
        original = int(group.desired_capacity or 0)
        with self._lock:
            if state.lifecycle_state in LEAVING_STATES:
                return TerminateInstanceActivity(state.instance, original)
            self.progress.pop(instance_id, None)
            state.lifecycle_state = "Terminating"
            if should_decrement:
                group.desired_capacity = original - 1
            drain = self.load_balancers.drain_seconds(group) if has_lb else 0
            self.progress[instance_id] = _Progress(group.name, "draining", until=self.clock.now() + drain)
            group.set_desired_capacity(group.desired_capacity)  # deregisters it; replaces it if not decremented
            activity = TerminateInstanceActivity(state.instance, original)
        self.tick(backend)
        return activity

    def complete(self, group_name: str, hook: str, result: str, instance_id: str | None, token: str | None,
                 *, heartbeat: bool = False) -> None:
        if not heartbeat and result not in ("CONTINUE", "ABANDON"):
            raise ValidationError(f"Lifecycle action result {result!r} must be CONTINUE or ABANDON")
        with self._lock:
            for waiting_id, progress in self.progress.items():
                if progress.group != group_name or (instance_id and waiting_id != instance_id):
                    continue
                for action in progress.actions:
                    if action.hook == hook and action.result is None and (not token or token == action.token):
                        if heartbeat:
                            action.deadline = self.clock.now() + action.heartbeat
                        else:
                            action.result = result
                        return
        named = f"instance ID {instance_id}" if instance_id else f"token {token}"
        raise ValidationError(f"No active Lifecycle Action found with {named}")

    def action_token(self, instance_id: str, hook: str) -> str:
        """Test/demo control: the token AWS would put in the lifecycle notification."""
        with self._lock:
            return next(a.token for a in self.progress[instance_id].actions if a.hook == hook)

    # --- moto patches --------------------------------------------------------------------------------------
    def _patch(self, patches: Patches) -> None:
        model, original = self, patches.original

        def replace(group: FakeAutoScalingGroup, count: int, tags: dict[str, str]) -> None:
            before = {id(s) for s in group.instance_states}
            original(FakeAutoScalingGroup, "replace_autoscaling_group_instances")(group, count, tags)
            model.launched(group, [s for s in group.instance_states if id(s) not in before])

        def active(group: FakeAutoScalingGroup) -> list[InstanceState]:
            # AWS counts pending instances toward desired; leaving ones no longer count
            return [s for s in group.instance_states if s.lifecycle_state not in LEAVING_STATES
                    and s.lifecycle_state != "Standby"]

        def terminate(backend: AutoScalingBackend, instance_id: str, should_decrement: bool) -> Any:
            return model.terminate(backend, instance_id, should_decrement)

        def attach(backend: AutoScalingBackend, group_name: str, instance_ids: list[str]) -> None:
            group = backend.autoscaling_groups[group_name]
            desired = int(group.desired_capacity or 0) + len(instance_ids)
            if desired > int(group.max_size or 0):  # AWS's answer, as its users see it (moto: ResourceContention)
                count = len(instance_ids)
                raise ValidationError(
                    f"AutoScalingGroup {group_name} has min-size={group.min_size}, max-size={group.max_size}, and "
                    f"desired-size={group.desired_capacity}. To attach {count} instance{'s' if count > 1 else ''}, "
                    "please update the AutoScalingGroup sizes appropriately.")
            leaving = [s for s in group.instance_states if s.lifecycle_state in LEAVING_STATES]
            group.instance_states = [s for s in group.instance_states if s not in leaving]
            try:
                original(AutoScalingBackend, "attach_instances")(backend, group_name, instance_ids)
            finally:
                group.instance_states[:0] = leaving
            group.desired_capacity = desired

        def put_lifecycle_hook(response: AutoScalingResponse) -> ActionResult:
            timeout = response._get_int_param("HeartbeatTimeout")
            if timeout is not None and not 30 <= timeout <= 7200:
                raise ValidationError(f"Heartbeat timeout {timeout} must be between 30 and 7200 seconds")
            result = response._get_param("DefaultResult")
            if result is not None and result not in ("CONTINUE", "ABANDON"):
                raise ValidationError(f"Default result {result!r} must be CONTINUE or ABANDON")
            return original(AutoScalingResponse, "put_lifecycle_hook")(response)

        def complete_lifecycle_action(response: AutoScalingResponse) -> EmptyResult:
            model.complete(response._get_param("AutoScalingGroupName"), response._get_param("LifecycleHookName"),
                           response._get_param("LifecycleActionResult"), response._get_param("InstanceId"),
                           response._get_param("LifecycleActionToken"))
            return EmptyResult()

        def record_heartbeat(response: AutoScalingResponse) -> EmptyResult:
            model.complete(response._get_param("AutoScalingGroupName"), response._get_param("LifecycleHookName"),
                           "", response._get_param("InstanceId"), response._get_param("LifecycleActionToken"),
                           heartbeat=True)
            return EmptyResult()

        def ticking(cls: type) -> Any:
            def call_action(response: Any) -> Any:
                from moto.autoscaling.models import autoscaling_backends

                model.tick(autoscaling_backends[response.current_account][response.region])
                return original(cls, "call_action")(response)

            return call_action

        patches.replace(FakeAutoScalingGroup, replace_autoscaling_group_instances=replace, active_instances=active)
        patches.replace(AutoScalingBackend, terminate_instance=terminate, attach_instances=attach)
        patches.replace(AutoScalingResponse, put_lifecycle_hook=put_lifecycle_hook)
        patches.add(AutoScalingResponse, complete_lifecycle_action=complete_lifecycle_action,
                                         record_lifecycle_action_heartbeat=record_heartbeat)
        for cls in (AutoScalingResponse, ELBV2Response, ELBResponse):  # ELB's inherit BaseResponse's: undo deletes
            patches.replace(cls, call_action=ticking(cls))
