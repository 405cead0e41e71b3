"""What moto's EC2 lacks and the workflow depends on, modeled in the embedded AWS.

- Boot: a new instance reports status checks `initializing` for `boot_delay_seconds` (moto says `ok` at once),
  then `ok`, or `impaired` for instance types listed in `impaired_types`.
- Spot capacity: per (instance type, AZ) a number of spot instances still available (absent: unlimited);
  a spot launch beyond it fails with InsufficientInstanceCapacity, as EC2 does.
- ClientToken: a RunInstances repeated with the same token returns the first reservation (moto launches again).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.instances import Instance, InstanceBackend


@dataclass
class Ec2Model:
    boot_delay_seconds: float = 2.0
    impaired_types: set[str] = field(default_factory=set)
    spot_capacity: dict[tuple[str, str], int] = field(default_factory=dict)
    _booted_at: dict[str, float] = field(default_factory=dict)
    _tokens: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _saved: dict[str, Any] = field(default_factory=dict)

    def check(self, instance: Instance) -> str:
        started = self._booted_at.get(instance.id)
        if started is not None and time.monotonic() - started < self.boot_delay_seconds:
            return "initializing"
        return "impaired" if instance.instance_type in self.impaired_types else "ok"

    def _status(self, instance: Instance) -> dict[str, Any]:
        if instance.state_code != 16:
            return {"Status": "not-applicable"}
        status = self.check(instance)
        detail = {"ok": "passed", "initializing": "initializing", "impaired": "failed"}[status]
        return {"Status": status, "Details": [{"Name": "reachability", "Status": detail}]}

    def _run_instances(self, backend: InstanceBackend, image_id: str, count: int, user_data: Any,
                       security_group_names: list[str], **kwargs: Any) -> Any:
        token = kwargs.get("client_token")
        with self._lock:
            if token and token != "ABCDE" and token in self._tokens:
                return self._tokens[token]
            if kwargs.get("instance_market_options"):
                self._take_spot_capacity(backend, kwargs, count)
            reservation = self._saved["run_instances"](
                backend, image_id, count, user_data, security_group_names, **kwargs
            )
            now = time.monotonic()
            for instance in reservation.instances:
                self._booted_at[instance.id] = now
            if token and token != "ABCDE":
                self._tokens[token] = reservation
            return reservation

    def _take_spot_capacity(self, backend: InstanceBackend, kwargs: dict[str, Any], count: int) -> None:
        zone = kwargs.get("placement")
        if kwargs.get("subnet_id"):
            zone = backend.get_subnet(kwargs["subnet_id"]).availability_zone  # type: ignore[attr-defined]
        instance_type = kwargs.get("instance_type") or "m1.small"
        pool = (instance_type, str(zone))
        left = self.spot_capacity.get(pool)
        if left is None:
            return
        if left < count:
            raise EC2ClientError(
                "InsufficientInstanceCapacity",
                f"There is no Spot capacity available that matches your request ({instance_type} in {zone}).",
            )
        self.spot_capacity[pool] = left - count

    def install(self) -> None:
        if self._saved:
            return
        model = self
        self._saved = {
            "run_instances": InstanceBackend.run_instances,
            "instance_status": Instance.instance_status,
            "system_status": Instance.system_status,
        }

        def run_instances(backend: InstanceBackend, image_id: str, count: int, user_data: Any,
                          security_group_names: list[str], **kwargs: Any) -> Any:
            return model._run_instances(backend, image_id, count, user_data, security_group_names, **kwargs)

        InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]
        Instance.instance_status = property(self._status)  # type: ignore[method-assign,assignment]
        Instance.system_status = property(self._status)  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if not self._saved:
            return
        InstanceBackend.run_instances = self._saved["run_instances"]  # type: ignore[method-assign]
        Instance.instance_status = self._saved["instance_status"]  # type: ignore[method-assign]
        Instance.system_status = self._saved["system_status"]  # type: ignore[method-assign]
        self._saved = {}
