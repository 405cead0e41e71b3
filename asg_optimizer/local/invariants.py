"""The safety invariants, checked on the embedded AWS after every task invocation of every execution.

- in-service instances of each group >= the desired capacity the swap started with (or the current desired, if the
  group was scaled in meanwhile), at every sample; for a group behind load balancers, the instances that serve:
  InService in the group AND healthy in every target group and InService in every classic ELB;
- no on-demand instance terminated unless a spot that replaces it (tag `AsgOptimiser:Replaces`) is InService in the
  same group — terminations the test itself made are declared with `external()`;
- at the end: no spot we launched running outside a group; every group setting we change (MaxSize, suspended
  processes, scale-in protection, our tags) back to its value.

Samples are taken through the in-process Lambda seam's observers, with a boto3 session of its own (so benchmarks
that count the task functions' calls do not count these).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from asg_optimizer import sessions
from asg_optimizer.local import seam
from tasks.core.tags import HOLD_PREFIX, ORIGINAL_MAX_SIZE, ORIGINAL_SUSPENDED, REPLACES

OUR_GROUP_TAGS = (HOLD_PREFIX, ORIGINAL_MAX_SIZE, ORIGINAL_SUSPENDED)


@dataclass(frozen=True)
class Sample:
    asg_name: str
    step: str
    in_service: int
    desired: int
    serving: int | None = None  # behind load balancers: members healthy in every one of them


@dataclass(frozen=True)
class Settings:
    min_size: int
    max_size: int
    suspended: frozenset[str]
    protected: frozenset[str]
    tags: frozenset[tuple[str, str]]


@dataclass
class InvariantChecker:
    """`with InvariantChecker(["web"]) as check: ...` then `check.finish()`; `check.violations` lists breaches."""

    asg_names: list[str]
    samples: list[Sample] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _baseline: dict[str, int] = field(default_factory=dict)
    _settings: dict[str, Settings] = field(default_factory=dict)
    _on_demand: dict[str, str] = field(default_factory=dict)  # instance id -> group, at start
    _external: set[str] = field(default_factory=set)
    _judged: set[str] = field(default_factory=set)  # on-demand instances already seen going, and judged
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _session: Any = None

    def _client(self, service: str) -> Any:
        if self._session is None:
            self._session = sessions.session()
        return self._session.client(service)

    def _groups(self) -> list[dict[str, Any]]:
        return self._client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=self.asg_names)[
            "AutoScalingGroups"
        ]

    def _instances(self, **filters: list[str]) -> list[dict[str, Any]]:
        flt = [{"Name": k, "Values": v} for k, v in filters.items()]
        pages = self._client("ec2").get_paginator("describe_instances").paginate(Filters=flt)
        return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]

    @staticmethod
    def _settings_of(group: dict[str, Any]) -> Settings:
        return Settings(
            min_size=group["MinSize"],
            max_size=group["MaxSize"],
            suspended=frozenset(p["ProcessName"] for p in group["SuspendedProcesses"]),
            protected=frozenset(i["InstanceId"] for i in group["Instances"] if i.get("ProtectedFromScaleIn")),
            tags=frozenset((t["Key"], t["Value"]) for t in group["Tags"]),
        )

    def external(self, instance_id: str) -> None:
        """The test itself terminated this instance (someone else did, from the optimizer's view)."""
        self._external.add(instance_id)

    def _serving(self, group: dict[str, Any]) -> int | None:
        """Members healthy in every load balancer of the group; None for a group without load balancers."""
        if not (group.get("TargetGroupARNs") or group.get("LoadBalancerNames")):
            return None
        serving = {i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService"}
        for arn in group.get("TargetGroupARNs") or []:
            found = self._client("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
            serving &= {d["Target"]["Id"] for d in found if d["TargetHealth"]["State"] == "healthy"}
        for name in group.get("LoadBalancerNames") or []:
            found = self._client("elb").describe_instance_health(LoadBalancerName=name)["InstanceStates"]
            serving &= {s["InstanceId"] for s in found if s["State"] == "InService"}
        return len(serving)

    def sample(self, step: str = "manual") -> None:
        groups = self._groups()
        serving = {g["AutoScalingGroupName"]: self._serving(g) for g in groups}
        with self._lock:
            for group in groups:
                name = group["AutoScalingGroupName"]
                in_service = sum(1 for i in group["Instances"] if i["LifecycleState"] == "InService")
                healthy = serving[name]
                self.samples.append(Sample(name, step, in_service, group["DesiredCapacity"], healthy))
                floor = min(self._baseline.get(name, 0), group["DesiredCapacity"])
                if in_service < floor:
                    self.violations.append(f"after {step}: ASG {name} has {in_service} InService, below {floor}")
                if healthy is not None and healthy < floor:
                    self.violations.append(
                        f"after {step}: ASG {name} has {healthy} healthy behind its load balancers, below {floor}")
        self._check_terminations(step, groups)

    def _check_terminations(self, step: str, groups: list[dict[str, Any]]) -> None:
        """Judge each watched on-demand once, when it is first seen going: by id, so a sample stays cheap however
        many instances the run has made."""
        pending = sorted(set(self._on_demand) - self._judged)
        if not pending:
            return
        pages = self._client("ec2").get_paginator("describe_instances").paginate(
            InstanceIds=pending, Filters=[{"Name": "instance-state-name", "Values": ["shutting-down", "terminated"]}]
        )
        watched = [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]
        if not watched:
            return
        in_service = {
            i["InstanceId"]: g["AutoScalingGroupName"]
            for g in groups for i in g["Instances"] if i["LifecycleState"] == "InService"
        }
        replacements = {
            t["Value"]: i["InstanceId"]
            for i in self._instances(**{f"tag:{REPLACES}": watched}) for t in i.get("Tags", []) if t["Key"] == REPLACES
        }
        with self._lock:
            for instance_id in watched:
                self._judged.add(instance_id)
                if instance_id in self._external:
                    continue
                spot = replacements.get(instance_id)
                if spot is None or in_service.get(spot) != self._on_demand[instance_id]:
                    self.violations.append(
                        f"after {step}: on-demand {instance_id} terminated without its replacement InService"
                    )

    def _observe(self, function: str, event: dict[str, Any], result: dict[str, Any], errored: bool) -> None:
        self.sample(function)

    def __enter__(self) -> InvariantChecker:
        for group in self._groups():
            name = group["AutoScalingGroupName"]
            self._baseline[name] = group["DesiredCapacity"]
            self._settings[name] = self._settings_of(group)
            ids = [i["InstanceId"] for i in group["Instances"]]
            if ids:
                for instance in self._instances(**{"instance-id": ids}):
                    if instance.get("InstanceLifecycle") != "spot":
                        self._on_demand[instance["InstanceId"]] = name
        self.sample("start")
        seam.observers.append(self._observe)
        return self

    def __exit__(self, *exc: object) -> None:
        seam.observers.remove(self._observe)

    def finish(self) -> list[str]:
        """The end-of-run checks (after the executions and the sweep bound); returns all violations."""
        self.sample("end")
        groups = self._groups()
        pages = self._client("autoscaling").get_paginator("describe_auto_scaling_instances").paginate()
        members = {i["InstanceId"] for page in pages for i in page["AutoScalingInstances"]}  # any group counts
        for spot in self._instances(**{"tag-key": [REPLACES], "instance-state-name": ["pending", "running"]}):
            if spot["InstanceId"] not in members:
                self.violations.append(f"spot {spot['InstanceId']} is running outside any group")
        for group in groups:
            name = group["AutoScalingGroupName"]
            before, after = self._settings.get(name), self._settings_of(group)
            if before is None:
                continue
            ours = {t for t in after.tags if t[0].startswith(OUR_GROUP_TAGS)}
            if ours:
                self.violations.append(f"ASG {name} still carries {sorted(k for k, _ in ours)}")
            for attribute in ("min_size", "max_size", "suspended"):
                if getattr(before, attribute) != getattr(after, attribute):
                    self.violations.append(
                        f"ASG {name} {attribute} is {getattr(after, attribute)}, was {getattr(before, attribute)}"
                    )
            if after.protected - before.protected:
                self.violations.append(f"ASG {name} protects {sorted(after.protected - before.protected)}")
        return self.violations

    def for_group(self, asg_name: str) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.asg_name == asg_name]

    def lowest_in_service(self, asg_name: str) -> int:
        return min(s.in_service for s in self.for_group(asg_name))

    def lowest_serving(self, asg_name: str) -> int | None:
        """The fewest members healthy behind the group's load balancers at any sample; None without any."""
        counts = [s.serving for s in self.for_group(asg_name) if s.serving is not None]
        return min(counts) if counts else None
