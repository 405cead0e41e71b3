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


@dataclass
class VisibilityModel:
    lag_calls: int = 0
    _hidden: dict[str, int] = field(default_factory=dict)  # instance id -> describe calls it still misses
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _saved: dict[str, Any] = field(default_factory=dict)

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

    def install(self) -> None:
        if self._saved:
            return
        model = self
        self._saved = {name: getattr(InstanceBackend, name) for name in
                       ("get_reservations_by_instance_ids", "describe_instances", "describe_instance_status")}
        saved = self._saved

        def by_ids(backend: InstanceBackend, instance_ids: list[str], filters: Any = None) -> Any:
            unseen = model._unseen(list(instance_ids))
            if unseen:
                raise InvalidInstanceIdError(sorted(unseen)[0])
            return saved["get_reservations_by_instance_ids"](backend, instance_ids, filters)

        def filtered(backend: InstanceBackend, filters: Any = None) -> Any:
            reservations = saved["describe_instances"](backend, filters)
            unseen = model._unseen([i.id for r in reservations for i in r.instances])
            for reservation in reservations:
                reservation.instances = [i for i in reservation.instances if i.id not in unseen]
            return [r for r in reservations if r.instances]

        def statuses(backend: InstanceBackend, instance_ids: list[str], include_all: bool, filters: Any) -> Any:
            found = saved["describe_instance_status"](backend, instance_ids, include_all, filters)
            unseen = model._unseen([i.id for i in found])
            if instance_ids and unseen:
                raise InvalidInstanceIdError(sorted(unseen)[0])
            return [i for i in found if i.id not in unseen]

        InstanceBackend.get_reservations_by_instance_ids = by_ids  # type: ignore[assignment,method-assign]
        InstanceBackend.describe_instances = filtered  # type: ignore[assignment,method-assign]
        InstanceBackend.describe_instance_status = statuses  # type: ignore[assignment,method-assign]

    def uninstall(self) -> None:
        for name, original in self._saved.items():
            setattr(InstanceBackend, name, original)
        self._saved = {}
