"""EC2's eventual consistency, which moto lacks: an instance launched a moment ago may not be visible yet.

AWS documents that DescribeInstances and DescribeInstanceStatus can answer `InvalidInstanceID.NotFound` for an
instance just launched, and that a filtered DescribeInstances (by tag) can leave it out. Modeled by call count,
not by time, so a test forces the lag deterministically whatever the machine's speed: with `lag_calls = N`, each
newly launched instance is left out of (or, asked for by id, NotFound in) the first N describe calls that would
have shown it. 0 (the default) turns the model off.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models.instances import InstanceBackend

from asg_optimizer.local.patching import Patches, Patching


@dataclass
class VisibilityModel(Patching):
    lag_calls: int = 0
    _hidden: dict[str, int] = field(default_factory=dict)  # instance id -> describe calls it still misses
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _patches: Patches = field(default_factory=Patches)

    def launched(self, instance_ids: list[str]) -> None:
        if self.lag_calls > 0:
            with self._lock:
                self._hidden.update(dict.fromkeys(instance_ids, self.lag_calls))

    def _unseen(self, instance_ids: list[str]) -> set[str]:
        """Which of these instances this one call does not see yet (each hidden one uses up one call)."""
        with self._lock:
            unseen = {i for i in instance_ids if self._hidden.get(i, 0) > 0}
            for instance_id in unseen:
                self._hidden[instance_id] -= 1
            return unseen

    def _patch(self, patches: Patches) -> None:
        model, original = self, patches.original

        def by_ids(backend: InstanceBackend, instance_ids: list[str], filters: Any = None) -> Any:
            unseen = model._unseen(list(instance_ids))
            if unseen:
                raise InvalidInstanceIdError(sorted(unseen)[0])
            return original(InstanceBackend, "get_reservations_by_instance_ids")(backend, instance_ids, filters)

        def filtered(backend: InstanceBackend, filters: Any = None) -> Any:
            reservations = original(InstanceBackend, "describe_instances")(backend, filters)
            unseen = model._unseen([i.id for r in reservations for i in r.instances])
            for reservation in reservations:
                reservation.instances = [i for i in reservation.instances if i.id not in unseen]
            return [r for r in reservations if r.instances]

        def statuses(backend: InstanceBackend, instance_ids: list[str], include_all: bool, filters: Any) -> Any:
            found = original(InstanceBackend, "describe_instance_status")(backend, instance_ids, include_all, filters)
            unseen = model._unseen([i.id for i in found])
            if instance_ids and unseen:
                raise InvalidInstanceIdError(sorted(unseen)[0])
            return [i for i in found if i.id not in unseen]

        patches.replace(InstanceBackend, get_reservations_by_instance_ids=by_ids, describe_instances=filtered,
                                         describe_instance_status=statuses)
