"""What moto's EC2 lacks and the workflow depends on, modeled in the embedded AWS.

- Boot: a new instance reports status checks `initializing` for `boot_delay_seconds` (moto says `ok` at once),
  then `ok`, or `impaired` for instance types listed in `impaired_types`.
- Spot capacity: per (instance type, AZ) a number of spot instances still available (absent: unlimited);
  a spot launch beyond it fails with InsufficientInstanceCapacity, as EC2 does.
- On-demand capacity: `on_demand_capacity[(type, AZ)]` instances still available (absent: unlimited); an on-demand
  RunInstances beyond it fails with InsufficientInstanceCapacity, as EC2 does (moto never runs out).
- ClientToken: a RunInstances repeated with the same token returns the first reservation (moto launches again).
- The spot market (asg_optimizer.local.spot_market): DescribeSpotPriceHistory answers from it, and CreateFleet
  type `instant` for spot chooses its pool there (strategy, capacity, MaxPrice), returns `Errors` when no pool
  can launch, honours ClientToken, then lets moto launch the one chosen override. Other fleets are moto's own.
- Interruptions: `reclaim(instance_id, after)` terminates a spot when its two-minute notice runs out.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.ec2.responses.fleets import Fleets
from moto.ec2.responses.spot_instances import SpotInstances

from asg_optimizer import sessions
from asg_optimizer.local.spot_market import Offer, SpotMarket, max_price
from tasks.core.prices import Pool


@dataclass
class Ec2Model:
    boot_delay_seconds: float = 2.0
    impaired_types: set[str] = field(default_factory=set)
    spot_capacity: dict[tuple[str, str], int] = field(default_factory=dict)
    on_demand_capacity: dict[tuple[str, str], int] = field(default_factory=dict)
    _booted_at: dict[str, float] = field(default_factory=dict)
    _tokens: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _saved: dict[str, Any] = field(default_factory=dict)
    market: SpotMarket = field(default_factory=SpotMarket)
    _fleets: dict[str, dict[str, Any]] = field(default_factory=dict)  # ClientToken -> CreateFleet result
    _timers: list[threading.Timer] = field(default_factory=list)
    _fleet_lock: threading.Lock = field(default_factory=threading.Lock)
    reclaimed: dict[str, float] = field(default_factory=dict)  # instance id -> monotonic time EC2 took it back

    def __post_init__(self) -> None:
        self.market.capacity = self.spot_capacity  # one capacity table for RunInstances and CreateFleet

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
            else:
                self._take_capacity(self.on_demand_capacity, "On-Demand", backend, kwargs, count)
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
        self._take_capacity(self.spot_capacity, "Spot", backend, kwargs, count)

    @staticmethod
    def _take_capacity(capacity: dict[tuple[str, str], int], market: str, backend: InstanceBackend,
                       kwargs: dict[str, Any], count: int) -> None:
        zone = kwargs.get("placement")
        if kwargs.get("subnet_id"):
            zone = backend.get_subnet(kwargs["subnet_id"]).availability_zone  # type: ignore[attr-defined]
        instance_type = kwargs.get("instance_type") or "m1.small"
        pool = (instance_type, str(zone))
        left = capacity.get(pool)
        if left is None:
            return
        if left < count:
            raise EC2ClientError(
                "InsufficientInstanceCapacity",
                f"There is no {market} capacity available that matches your request ({instance_type} in {zone}).",
            )
        capacity[pool] = left - count

    def _create_fleet(self, response: Fleets) -> ActionResult:
        """CreateFleet `instant` for spot: the market picks one override; moto launches it."""
        get = response._get_param
        target = get("TargetCapacitySpecification", {})
        if get("Type") != "instant" or target.get("DefaultTargetCapacityType") != "spot":
            return self._saved["create_fleet"](response)
        response.error_on_dryrun()
        token, spot_options, configs = get("ClientToken"), get("SpotOptions", {}), get("LaunchTemplateConfigs", [])
        backend = response.ec2_backend
        with self._fleet_lock:  # not _lock: the launch below goes through _run_instances, which takes it
            if token and token in self._fleets:
                return ActionResult(self._fleets[token])
            offers, sources = [], []
            for config in configs:
                for override in config.get("Overrides") or [{}]:
                    zone = override.get("AvailabilityZone")
                    if override.get("SubnetId"):
                        zone = backend.get_subnet(override["SubnetId"]).availability_zone
                    pool = Pool(override.get("InstanceType", ""), str(zone))
                    offers.append(Offer(pool, max_price(override, spot_options), len(offers)))
                    sources.append((config["LaunchTemplateSpecification"], override))
            count = int(target.get("TotalTargetCapacity", 1))
            chosen, refusals = self.market.allocate(offers, spot_options.get("AllocationStrategy", ""), count)
            launch = [] if chosen is None else [
                {"LaunchTemplateSpecification": sources[chosen.index][0], "Overrides": [sources[chosen.index][1]]}
            ]
            fleet = backend.create_fleet(
                on_demand_options={}, spot_options=spot_options,
                target_capacity_specification={**target, "TotalTargetCapacity": count if launch else 0,
                                               "SpotTargetCapacity": count if launch else 0},
                launch_template_configs=launch, excess_capacity_termination_policy="termination",
                replace_unhealthy_instances=False, terminate_instances_with_expiration=True, fleet_type="instant",
                valid_from=None, valid_until=None, tag_specifications=get("TagSpecifications", []),
            )
            result = {"FleetId": fleet.id, "Instances": fleet.instances or [], "Errors": [
                {"LaunchTemplateAndOverrides": {"LaunchTemplateSpecification": sources[r.offer.index][0],
                                                "Overrides": sources[r.offer.index][1]},
                 "Lifecycle": "spot", "ErrorCode": r.code, "ErrorMessage": r.message}
                for r in refusals
            ]}
            if token:
                self._fleets[token] = result
            return ActionResult(result)

    def _spot_price_history(self, response: SpotInstances) -> ActionResult:
        get = response._get_param
        filters = response._filters_from_querystring()
        types = list(get("InstanceTypes", []) or filters.get("instance-type", []))
        zones = list(filters.get("availability-zone", []))
        descriptions = set(get("ProductDescriptions", []) or filters.get("product-description", []))
        rows = []
        if not descriptions or "Linux/UNIX" in descriptions:  # the market models Linux/UNIX prices only
            rows = self.market.history(types, zones, _when(get("StartTime")), _when(get("EndTime")))
        return ActionResult({"SpotPriceHistory": [
            {"InstanceType": pool.instance_type, "AvailabilityZone": pool.availability_zone,
             "ProductDescription": "Linux/UNIX", "SpotPrice": f"{price:.6f}", "Timestamp": at}
            for at, pool, price in rows
        ]})

    def reclaim(self, instance_id: str, after_seconds: float) -> None:
        """EC2 takes the spot back `after_seconds` from now (the end of its interruption notice)."""

        def take_back() -> None:
            ec2 = sessions.session(region_name=self.market.region).client("ec2")
            ec2.terminate_instances(InstanceIds=[instance_id])
            self.reclaimed[instance_id] = time.monotonic()

        timer = threading.Timer(after_seconds, take_back)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def install(self) -> None:
        if self._saved:
            return
        model = self
        self._saved = {
            "run_instances": InstanceBackend.run_instances,
            "instance_status": Instance.instance_status,
            "system_status": Instance.system_status,
            "create_fleet": Fleets.create_fleet,
            "spot_price_history": SpotInstances.describe_spot_price_history,
        }
        Fleets.create_fleet = lambda response: model._create_fleet(response)  # type: ignore[method-assign]
        SpotInstances.describe_spot_price_history = (  # type: ignore[method-assign]
            lambda response: model._spot_price_history(response)
        )

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
        Fleets.create_fleet = self._saved["create_fleet"]  # type: ignore[method-assign]
        SpotInstances.describe_spot_price_history = self._saved["spot_price_history"]  # type: ignore[method-assign]
        for timer in self._timers:
            timer.cancel()
        self._saved = {}


def _when(raw: Any) -> datetime | None:
    """A request timestamp (ISO 8601 text from the query string) as an aware datetime."""
    if not raw:
        return None
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
