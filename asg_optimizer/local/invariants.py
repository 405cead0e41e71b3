"""The safety invariants, checked on the embedded AWS after every task invocation of every execution.

- in-service instances of each group >= the desired capacity the swap started with (or the current desired, if the
  group was scaled in meanwhile), at every sample; for a group behind load balancers, the instances that serve:
  InService in the group AND healthy in every target group and InService in every classic ELB;
- no on-demand instance (with `watch_spots`, no instance at all) terminated unless the instance that replaces it
  (tag `AsgOptimiser:Replaces`) is InService in the same group — terminations the test itself made are declared
  with `external()`;
- at the end: no spot we launched running outside a group; every group setting we change (MaxSize, suspended
  processes, scale-in protection, our tags) back to its value; no hold, lease or instance claim left in a
  group's coordination record (tasks.aws.coordination).

Samples are taken through the in-process Lambda seam's observers and read the emulator's own state (moto's
Auto Scaling and EC2 backends), not the API: the same facts DescribeAutoScalingGroups and DescribeInstances
report, for every watched group however many there are, in well under a millisecond at soak scale (through
boto3 a sample cost ~0.3 s and grew with the fleet). It reads under the emulator's call lock, so a sample sees
the state between two AWS calls, never inside one, while other handlers run; and it makes no API call, so
benchmarks that count calls and the fault injector never see it. Target health of groups behind load balancers is
read through the API (the embedded AWS models health in its load-balancer model, over moto's), with a session of
its own, so only such groups pay for it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from moto.autoscaling.models import autoscaling_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from asg_optimizer import sessions
from asg_optimizer.local import interleaving, seam
from tasks.core.tags import HOLD_PREFIX, ORIGINAL_MAX_SIZE, ORIGINAL_SUSPENDED, REPLACES

OUR_GROUP_TAGS = (HOLD_PREFIX, ORIGINAL_MAX_SIZE, ORIGINAL_SUSPENDED)
GOING = ("shutting-down", "terminated")


@dataclass(frozen=True)
class Member:
    instance_id: str
    lifecycle_state: str
    protected: bool


@dataclass(frozen=True)
class GroupView:
    """One group as DescribeAutoScalingGroups reports it, read from moto's backend."""

    name: str
    desired: int
    min_size: int
    max_size: int
    suspended: frozenset[str]
    tags: frozenset[tuple[str, str]]
    members: tuple[Member, ...]
    target_groups: tuple[str, ...] = ()
    load_balancers: tuple[str, ...] = ()

    @property
    def in_service(self) -> dict[str, str]:
        return {m.instance_id: self.name for m in self.members if m.lifecycle_state == "InService"}


@dataclass(frozen=True)
class InstanceView:
    """One instance as DescribeInstances reports it: state, market, and the on-demand it replaces (our tag)."""

    instance_id: str
    state: str
    spot: bool
    replaces: str | None


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
    region: str = field(default_factory=lambda: os.environ.get("AWS_REGION") or "us-east-1")
    account: str = DEFAULT_ACCOUNT_ID
    # Also watch the spots present at the start (swaps back to on-demand retire spots): none may go before
    # the instance replacing it is InService. Off by default: EC2 reclaims spots at will.
    watch_spots: bool = False
    samples: list[Sample] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _baseline: dict[str, int] = field(default_factory=dict)
    _settings: dict[str, Settings] = field(default_factory=dict)
    _on_demand: dict[str, str] = field(default_factory=dict)  # instance id -> group, at start
    _external: set[str] = field(default_factory=set)
    _judged: set[str] = field(default_factory=set)  # on-demand instances already seen going, and judged
    _session: Any = None
    sample_seconds: float = 0.0  # time spent sampling, lock waits excluded (benchmarks print it per sample)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- reading the emulator (always under its call lock: between two AWS calls, never inside one) ---

    def _groups(self, names: Iterable[str] | None = None) -> list[GroupView]:
        """The named groups (all of them, with None) in the order asked; a group that does not exist is absent,
        as in DescribeAutoScalingGroups."""
        with interleaving.CALL_LOCK:
            groups = autoscaling_backends[self.account][self.region].autoscaling_groups
            chosen = list(groups.values()) if names is None else [groups[n] for n in names if n in groups]
            return [_view_of_group(group) for group in chosen]

    def _instances(self, ids: Iterable[str] | None = None) -> dict[str, InstanceView]:
        """The instances with these ids (every instance, with None), by id."""
        with interleaving.CALL_LOCK:
            backend = ec2_backends[self.account][self.region]
            wanted = None if ids is None else set(ids)
            return {
                instance.id: InstanceView(
                    instance.id, instance.state, instance.lifecycle == "spot",
                    (backend.tags.get(instance.id) or {}).get(REPLACES),
                )
                for reservation in list(backend.reservations.values())
                for instance in reservation.instances
                if wanted is None or instance.id in wanted
            }

    @staticmethod
    def _settings_of(group: GroupView) -> Settings:
        return Settings(
            min_size=group.min_size,
            max_size=group.max_size,
            suspended=group.suspended,
            protected=frozenset(m.instance_id for m in group.members if m.protected),
            tags=group.tags,
        )

    def _client(self, service: str) -> Any:
        if self._session is None:
            self._session = sessions.session()
        return self._session.client(service)

    def _serving(self, group: GroupView) -> set[str] | None:
        """Members healthy in every load balancer of the group; None for a group without load balancers."""
        if not (group.target_groups or group.load_balancers):
            return None
        serving = set(group.in_service)
        for arn in group.target_groups:
            found = self._client("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
            serving &= {d["Target"]["Id"] for d in found if d["TargetHealth"]["State"] == "healthy"}
        for name in group.load_balancers:
            found = self._client("elb").describe_instance_health(LoadBalancerName=name)["InstanceStates"]
            serving &= {s["InstanceId"] for s in found if s["State"] == "InService"}
        return serving

    def external(self, instance_id: str) -> None:
        """The test itself terminated this instance (someone else did, from the optimizer's view)."""
        self._external.add(instance_id)

    def sample(self, step: str = "manual") -> None:
        """One consistent view of every watched group: the whole sample holds the emulator's call lock (re-entrant,
        so its own health reads go through), so no other handler's call lands between reading the groups and
        reading who replaced whom, and concurrent observers judge one at a time."""
        with interleaving.CALL_LOCK, self._lock:
            began = time.perf_counter()  # the sample's own cost, not the wait for the lock
            groups = self._groups(self.asg_names)
            serving = {group.name: self._serving(group) for group in groups}
            for group in groups:
                in_service, healthy = len(group.in_service), serving[group.name]
                self.samples.append(Sample(group.name, step, in_service, group.desired,
                                           None if healthy is None else len(healthy)))
                floor = min(self._baseline.get(group.name, 0), group.desired)
                if in_service < floor:
                    self.violations.append(f"after {step}: ASG {group.name} has {in_service} InService, below {floor}")
                if healthy is not None and len(healthy) < floor:
                    self.violations.append(f"after {step}: ASG {group.name} has {len(healthy)} healthy behind its "
                                           f"load balancers, below {floor}")
            self._check_retirements(step, groups, serving)
            self.sample_seconds += time.perf_counter() - began

    def _check_retirements(self, step: str, groups: list[GroupView], serving: dict[str, set[str] | None]) -> None:
        """Judge each watched on-demand once, when its retirement starts: when its group starts terminating it (it
        leaves its load balancers then, and drains) or its EC2 state goes, whichever is seen first. Its replacement
        must serve at that moment: InService in the same group and, behind load balancers, healthy in them. (Judged
        when the EC2 instance finally went, a web on-demand that drained for minutes would be blamed for its spot
        being reclaimed meanwhile.)"""
        pending = set(self._on_demand) - self._judged
        if not pending:
            return
        leaving = {m.instance_id for g in groups for m in g.members if m.lifecycle_state.startswith("Terminating")}
        watched = sorted(i for i, seen in self._instances(pending).items() if seen.state in GOING or i in leaving)
        if not watched:
            return
        replacements = {
            seen.replaces: seen.instance_id for seen in self._instances().values() if seen.replaces in watched
        }
        in_service = {i: name for group in groups for i, name in group.in_service.items()}
        for instance_id in watched:
            self._judged.add(instance_id)
            if instance_id in self._external:
                continue
            group, spot = self._on_demand[instance_id], replacements.get(instance_id)
            healthy = serving.get(group)
            if spot is None or in_service.get(spot) != group:
                self.violations.append(
                    f"after {step}: on-demand {instance_id} terminated without its replacement InService"
                )
            elif healthy is not None and spot not in healthy:
                self.violations.append(
                    f"after {step}: on-demand {instance_id} retired before its replacement {spot} was healthy "
                    "behind the load balancers"
                )

    def _observe(self, function: str, event: dict[str, Any], result: dict[str, Any], errored: bool) -> None:
        self.sample(function)

    def __enter__(self) -> InvariantChecker:
        groups = self._groups(self.asg_names)
        members = self._instances(m.instance_id for g in groups for m in g.members)
        for group in groups:
            self._baseline[group.name] = group.desired
            self._settings[group.name] = self._settings_of(group)
            for member in group.members:
                seen = members.get(member.instance_id)
                if seen is not None and (self.watch_spots or not seen.spot):
                    self._on_demand[member.instance_id] = group.name
        self.sample("start")
        seam.observers.append(self._observe)
        return self

    def __exit__(self, *exc: object) -> None:
        seam.observers.remove(self._observe)

    def finish(self) -> list[str]:
        """The end-of-run checks (after the executions and the sweep bound); returns all violations."""
        self.sample("end")
        with interleaving.CALL_LOCK:
            every_group = self._groups()
            instances = self._instances()
        members = {m.instance_id for g in every_group for m in g.members}  # any group counts
        for spot in instances.values():
            if spot.replaces is not None and spot.state in ("pending", "running") and spot.instance_id not in members:
                self.violations.append(f"spot {spot.instance_id} is running outside any group")
        for group in self._groups(self.asg_names):
            name = group.name
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
            left = self._left_in_record(name)
            if left:
                self.violations.append(f"ASG {name} coordination record still holds {left}")
        return self.violations

    def _left_in_record(self, asg_name: str) -> list[str]:
        """Holds, a lease or instance claims left in the group's record, in any table (read at the end only)."""
        dynamodb = self._client("dynamodb")
        left: list[str] = []
        for table in dynamodb.list_tables()["TableNames"]:
            key = dynamodb.describe_table(TableName=table)["Table"]["KeySchema"][0]["AttributeName"]
            item = dynamodb.get_item(TableName=table, Key={key: {"S": f"group#{asg_name}"}}).get("Item") or {}
            left += sorted(k for k in item if k.startswith(("hold#", "claim#", "lease_owner")))
        return left

    def for_group(self, asg_name: str) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.asg_name == asg_name]

    def lowest_in_service(self, asg_name: str) -> int:
        return min(s.in_service for s in self.for_group(asg_name))

    def lowest_serving(self, asg_name: str) -> int | None:
        """The fewest members healthy behind the group's load balancers at any sample; None without any."""
        counts = [s.serving for s in self.for_group(asg_name) if s.serving is not None]
        return min(counts) if counts else None


def _view_of_group(group: Any) -> GroupView:
    return GroupView(
        name=group.name,
        desired=int(group.desired_capacity),
        min_size=int(group.min_size),
        max_size=int(group.max_size),
        suspended=frozenset(p["ProcessName"] for p in group.suspended_processes),
        tags=frozenset((t["Key"], t.get("Value", "")) for t in group.tags),
        members=tuple(Member(s.instance.id, s.lifecycle_state, bool(s.protected_from_scale_in))
                      for s in group.instance_states),
        target_groups=tuple(group.target_group_arns or ()),
        load_balancers=tuple(group.load_balancer_names or ()),
    )
