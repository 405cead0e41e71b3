"""Load-balancer health as AWS reports it, which moto does not model (moto calls every registered target healthy
at once and forgets a deregistered one at once).

- Target groups (elbv2): a registered target is `initial` (Elb.RegistrationInProgress for the first health-check
  interval, then Elb.InitialHealthChecking) until HealthCheckIntervalSeconds x HealthyThresholdCount have
  passed, then `healthy`. A target whose instance type or image id is in `never_healthy` fails its checks:
  `unhealthy` (Target.FailedHealthChecks) after interval x UnhealthyThresholdCount. A deregistered target is
  `draining` (Target.DeregistrationInProgress) for the group's `deregistration_delay.timeout_seconds` (default
  300), listed by DescribeTargetHealth, then `unused` (Target.NotRegistered) and no longer listed.
- Classic load balancers: a registered instance is `OutOfService` ("Instance registration is still in
  progress.", then "Instance has not passed the configured HealthyThreshold number of health checks
  consecutively.") until Interval x HealthyThreshold, then `InService`; never-healthy ones stay OutOfService
  (ReasonCode Instance). Deregistered with connection draining enabled, it is reported OutOfService
  ("Instance deregistration currently in progress.") for the draining timeout.
- Auto Scaling registers only members that are InService (not Pending:Wait: a launch hook holds registration
  back) and deregisters members that leave or start Terminating (moto never deregisters from target groups).

Time is the embedded AWS's clock (asg_optimizer.local.clock), in AWS seconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.elb.exceptions import LoadBalancerNotFoundError
from moto.elb.models import ELBBackend
from moto.elb.responses import ELBResponse
from moto.elbv2.models import ELBv2Backend, FakeHealthStatus, FakeTargetGroup

from asg_optimizer.local.clock import Clock, RealClock
from asg_optimizer.local.patching import Patches, Patching

SERVING = "InService"
DEFAULT_DEREGISTRATION_DELAY = 300


def deregistration_delay(target_group: FakeTargetGroup) -> int:
    return int(str(target_group.attributes.get("deregistration_delay.timeout_seconds", DEFAULT_DEREGISTRATION_DELAY)))


def connection_draining(balancer: Any) -> int:
    """A classic ELB's draining timeout, 0 when draining is off. moto stores the request's `Enabled`/`Timeout`
    as given and adds a lowercase `timeout` of 300 beside them, so the request's own keys win."""
    draining = balancer.attributes.get("connection_draining", {}) if balancer else {}
    enabled = draining.get("Enabled", draining.get("enabled", False))
    if str(enabled).lower() != "true":
        return 0
    return int(draining.get("Timeout", draining.get("timeout", 300)))


@dataclass
class LoadBalancerModel(Patching):
    clock: Clock = field(default_factory=RealClock)
    never_healthy: set[str] = field(default_factory=set)  # instance types or image ids that never pass
    _registered: dict[tuple[str, str], float] = field(default_factory=dict)  # (lb key, instance) -> when
    _draining: dict[tuple[str, str], float] = field(default_factory=dict)  # (lb key, instance) -> drained at
    _by_group: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # group -> what it registered
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _patches: Patches = field(default_factory=Patches)

    # --- the rules -----------------------------------------------------------------------------------------
    def _fails(self, instance: Any) -> bool:
        return bool(instance is not None and ({instance.instance_type, instance.image_id} & self.never_healthy))

    def target_state(self, target_group: FakeTargetGroup, instance_id: str) -> tuple[str, str | None, str | None]:
        """(State, Reason, Description) of one target, as DescribeTargetHealth reports it."""
        key, now = (target_group.arn, instance_id), self.clock.now()
        with self._lock:
            registered, drained_at = self._registered.get(key), self._draining.get(key)
        if registered is None:
            if drained_at is not None and now < drained_at:
                return "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
            return "unused", "Target.NotRegistered", "Target is not registered to the target group"
        interval = int(target_group.health_check_interval_seconds)
        instance = target_group.ec2_backend.get_instance_by_id(instance_id)
        if instance is not None and instance.state != "running":
            return "unhealthy", "Target.FailedHealthChecks", "Health checks failed"
        elapsed = now - registered
        if self._fails(instance):
            if elapsed >= interval * int(target_group.unhealthy_threshold_count):
                return "unhealthy", "Target.FailedHealthChecks", "Health checks failed"
        elif elapsed >= interval * int(target_group.healthy_threshold_count):
            return "healthy", None, None
        if elapsed < interval:
            return "initial", "Elb.RegistrationInProgress", "Target registration is in progress"
        return "initial", "Elb.InitialHealthChecking", "Initial health checking in progress"

    def instance_state(self, load_balancer: Any, instance_id: str, ec2_backend: Any) -> dict[str, str]:
        """One classic ELB InstanceState."""
        key, now = (f"elb:{load_balancer.name}", instance_id), self.clock.now()
        with self._lock:
            registered, drained_at = self._registered.get(key), self._draining.get(key)
        if registered is None:
            if drained_at is not None and now < drained_at:
                return _clb(instance_id, "OutOfService", "ELB", "Instance deregistration currently in progress.")
            return _clb(instance_id, "Unknown", "ELB", "Instance is not currently registered with the LoadBalancer.")
        check = load_balancer.health_check
        interval = int(check.interval) if check else 30
        healthy, unhealthy = (int(check.healthy_threshold), int(check.unhealthy_threshold)) if check else (10, 2)
        instance = ec2_backend.get_instance_by_id(instance_id)
        if instance is None or instance.state != "running":
            state = instance.state if instance else "terminated"
            return _clb(instance_id, "OutOfService", "Instance", f"Instance is in {state} state.")
        elapsed = now - registered
        if self._fails(instance) and elapsed >= interval * unhealthy:
            return _clb(instance_id, "OutOfService", "Instance",
                        "Instance has failed at least the UnhealthyThreshold number of health checks consecutively.")
        if not self._fails(instance) and elapsed >= interval * healthy:
            return _clb(instance_id, "InService", "N/A", "N/A")
        if elapsed < interval:
            return _clb(instance_id, "OutOfService", "ELB", "Instance registration is still in progress.")
        return _clb(instance_id, "OutOfService", "Instance",
                    "Instance has not passed the configured HealthyThreshold number of health checks consecutively.")

    def drain_seconds(self, group: FakeAutoScalingGroup) -> float:
        """How long a member leaving `group` drains: the longest deregistration delay of its load balancers."""
        backend = group.autoscaling_backend
        delays = [0.0]
        for arn in group.target_group_arns or []:
            target_group = backend.elbv2_backend.target_groups.get(arn)
            if target_group is not None:
                delays.append(deregistration_delay(target_group))
        for name in group.load_balancer_names or []:
            delays.append(connection_draining(backend.elb_backend.load_balancers.get(name)))
        return max(delays)

    # --- registration bookkeeping --------------------------------------------------------------------------
    def _register(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._draining.pop(key, None)
            self._registered.setdefault(key, self.clock.now())

    def _deregister(self, key: tuple[str, str], drain_seconds: float) -> None:
        with self._lock:
            if self._registered.pop(key, None) is not None and drain_seconds > 0:
                self._draining[key] = self.clock.now() + drain_seconds

    def sync_group(self, backend: AutoScalingBackend, group_name: str) -> None:
        """Register the group's InService members with its load balancers; deregister every other one it had."""
        group = backend.autoscaling_groups[group_name]
        serving = {s.instance.id for s in group.instance_states if s.lifecycle_state == SERVING}
        with self._lock:
            had = self._by_group.setdefault(group_name, set())
            for arn in group.target_group_arns or []:
                target_group = backend.elbv2_backend.target_groups.get(arn)
                if target_group is None:
                    continue
                for instance_id in sorted(serving - {i for lb, i in had if lb == arn}):
                    target_group.register([{"Id": instance_id, "Port": target_group.port}])
                    had.add((arn, instance_id))
                for lb, instance_id in sorted(had):
                    if lb == arn and instance_id not in serving:
                        if instance_id in target_group.targets:
                            target_group.deregister([{"Id": instance_id}])
                        had.discard((lb, instance_id))
            for name in group.load_balancer_names or []:
                lb_key = f"elb:{name}"
                if backend.elb_backend.load_balancers.get(name) is None:
                    continue
                joining = sorted(serving - {i for lb, i in had if lb == lb_key})
                if joining:
                    backend.elb_backend.register_instances(name, joining, from_autoscaling=True)
                    had.update((lb_key, i) for i in joining)
                leaving = sorted(i for lb, i in had if lb == lb_key and i not in serving)
                if leaving:
                    backend.elb_backend.deregister_instances(name, leaving, from_autoscaling=True)
                    had.difference_update((lb_key, i) for i in leaving)

    # --- moto patches --------------------------------------------------------------------------------------
    def _patch(self, patches: Patches) -> None:
        model, original = self, patches.original

        def tg_register(target_group: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
            original(FakeTargetGroup, "register")(target_group, targets)
            for target in targets:
                model._register((target_group.arn, target["Id"]))

        def tg_deregister(target_group: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
            original(FakeTargetGroup, "deregister")(target_group, targets)
            for target in targets:
                model._deregister((target_group.arn, target["Id"]), deregistration_delay(target_group))

        def tg_terminated(target_group: FakeTargetGroup, instance_ids: list[str]) -> None:
            # EC2 terminated a registered instance: it drains like any deregistered target
            for instance_id in instance_ids:
                if instance_id in target_group.targets:
                    target_group.targets.pop(instance_id)
                    target_group.deregistered_targets[instance_id] = {"Id": instance_id}
                    model._deregister((target_group.arn, instance_id), deregistration_delay(target_group))

        def health_for(target_group: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any) -> FakeHealthStatus:
            state, reason, description = model.target_state(target_group, target["Id"])
            port = target.get("Port", target_group.port)
            return FakeHealthStatus(target["Id"], port, target_group.health_check_port, state, reason, description)

        def describe_target_health(backend: ELBv2Backend, arn: str, targets: list[dict[str, Any]]) -> Any:
            if not targets and arn in backend.target_groups:
                now = model.clock.now()
                with model._lock:
                    draining = [i for (lb, i), end in model._draining.items() if lb == arn and now < end]
                group = backend.target_groups[arn]
                targets = [*group.targets.values(), *({"Id": i} for i in draining if i not in group.targets)]
            return original(ELBv2Backend, "describe_target_health")(backend, arn, targets)

        def elb_register(backend: ELBBackend, name: str, instance_ids: Any, from_autoscaling: bool = False) -> Any:
            ids = list(instance_ids)
            result = original(ELBBackend, "register_instances")(backend, name, ids, from_autoscaling)
            for instance_id in ids:
                model._register((f"elb:{name}", instance_id))
            return result

        def elb_deregister(backend: ELBBackend, name: str, instance_ids: Any, from_autoscaling: bool = False) -> Any:
            ids = list(instance_ids)
            result = original(ELBBackend, "deregister_instances")(backend, name, ids, from_autoscaling)
            for instance_id in ids:
                model._deregister((f"elb:{name}", instance_id), connection_draining(backend.load_balancers[name]))
            return result

        def describe_instance_health(response: ELBResponse) -> ActionResult:
            backend, name = response.elb_backend, response._get_param("LoadBalancerName")
            wanted = [i["InstanceId"] for i in response._get_param("Instances", [])]
            balancer = backend.get_load_balancer(name)
            if balancer is None:
                raise LoadBalancerNotFoundError(name)
            now = model.clock.now()
            with model._lock:
                draining = [i for (lb, i), end in model._draining.items() if lb == f"elb:{name}" and now < end]
            ids = wanted or [*balancer.instance_ids, *(i for i in draining if i not in balancer.instance_ids)]
            ec2 = ec2_backends[backend.account_id][backend.region_name]
            return ActionResult({"InstanceStates": [model.instance_state(balancer, i, ec2) for i in ids]})

        patches.replace(FakeTargetGroup, register=tg_register, deregister=tg_deregister,
                                         deregister_terminated_instances=tg_terminated, health_for=health_for)
        patches.replace(ELBv2Backend, describe_target_health=describe_target_health)
        patches.replace(ELBBackend, register_instances=elb_register, deregister_instances=elb_deregister)
        patches.replace(ELBResponse, describe_instance_health=describe_instance_health)

        def sync(backend: AutoScalingBackend, group_name: str) -> None:
            model.sync_group(backend, group_name)

        patches.replace(AutoScalingBackend, update_attached_target_groups=sync, update_attached_elbs=sync)


def _clb(instance_id: str, state: str, reason: str, description: str) -> dict[str, str]:
    return {"InstanceId": instance_id, "State": state, "ReasonCode": reason, "Description": description}
