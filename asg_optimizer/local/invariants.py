"""Capacity sampling for the embedded AWS: after every task invocation, record each watched group's InService
count and desired capacity, so tests and the demo can prove in-service never dropped below desired."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import boto3

from asg_optimizer.local import seam


@dataclass(frozen=True)
class Sample:
    asg_name: str
    step: str
    in_service: int
    desired: int


@dataclass
class CapacityWatch:
    """Register with `with CapacityWatch(["web"]) as watch:`; `watch.lowest(asg)` gives the minimum seen.

    Uses its own boto3 session, so benchmarks that count the task functions' calls do not count these.
    """

    asg_names: list[str]
    samples: list[Sample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: Any = None

    def sample(self, step: str = "manual") -> None:
        if self._client is None:
            self._client = boto3.session.Session().client("autoscaling")
        groups = self._client.describe_auto_scaling_groups(AutoScalingGroupNames=self.asg_names)["AutoScalingGroups"]
        with self._lock:
            for group in groups:
                in_service = sum(1 for i in group["Instances"] if i["LifecycleState"] == "InService")
                self.samples.append(Sample(group["AutoScalingGroupName"], step, in_service, group["DesiredCapacity"]))

    def _observe(self, function: str, event: dict[str, Any], result: dict[str, Any], errored: bool) -> None:
        self.sample(function)

    def __enter__(self) -> CapacityWatch:
        self.sample("start")
        seam.observers.append(self._observe)
        return self

    def __exit__(self, *exc: object) -> None:
        seam.observers.remove(self._observe)
        self.sample("end")

    def for_group(self, asg_name: str) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.asg_name == asg_name]

    def lowest_in_service(self, asg_name: str) -> int:
        return min(s.in_service for s in self.for_group(asg_name))
