"""What moto's EC2 lacks and the workflow depends on, modeled in the embedded AWS.

- Boot: a new instance reports status checks `initializing` for `boot_delay_seconds` (moto says `ok` at once),
  then `ok`, or `impaired` for instance types listed in `impaired_types`. So tests need not race the clock:
  `boot_status_reads = N` keeps it `initializing` for its first N DescribeInstanceStatus answers whatever the
  time, and `boot_held = True` keeps every instance `initializing` until set back.
- Spot capacity: per (instance type, AZ) a number of spot instances still available (absent: unlimited);
  a spot launch beyond it fails with InsufficientInstanceCapacity, as EC2 does.
- On-demand capacity: `on_demand_capacity[(type, AZ)]` instances still available (absent: unlimited); an on-demand
  RunInstances beyond it fails with InsufficientInstanceCapacity, as EC2 does (moto never runs out).
- ClientToken: a RunInstances repeated with the same token returns the first reservation (moto launches again).
- The spot market (asg_optimizer.local.spot_market): DescribeSpotPriceHistory answers from it per OS, and
  CreateFleet type `instant` for spot chooses its pool there (strategy, capacity, MaxPrice or else the on-demand
  price of the AMI's OS, the spot quota), returns `Errors` when no pool can launch, then lets moto launch the
  one chosen override. Other fleets are moto's own.
- CreateFleet's ClientToken: the same token with the same request returns the first answer; with any other
  parameter changed it fails with IdempotentParameterMismatch, as EC2 documents (moto ignores the token).
- CreateFleet and the launch template: a template with InstanceMarketOptions is refused (a fleet sets the
  market itself); a template with NetworkInterfaces under an override's SubnetId fails each override with
  InvalidParameterCombination, as RunInstances refuses an interface and an instance-level subnet together.
- Platforms (asg_optimizer.local.platforms): AMIs and instances report PlatformDetails and UsageOperation.
- Eventual consistency (asg_optimizer.local.consistency): `visibility.lag_calls` hides a new instance from the
  first describe calls that would show it.
- Interruptions: `reclaim(instance_id, at)` terminates a spot when its two-minute notice runs out, at `at` on the
  embedded AWS's notice clock (`Clock.epoch`, which the handlers' release deadline reads), not after wall seconds;
  a spot whose pool price rises above its launch's price ceiling (MaxPrice, or else its on-demand price) is
  interrupted at once (`price_interrupted`), as EC2 interrupts a spot once the spot price exceeds your max price.
"""

from __future__ import annotations

import json
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
from asg_optimizer.local.clock import Clock, RealClock
from asg_optimizer.local.consistency import VisibilityModel
from asg_optimizer.local.patching import Patches, Patching
from asg_optimizer.local.platforms import PlatformModel
from asg_optimizer.local.spot_market import ZONE_SUFFIXES, Offer, Refusal, SpotMarket, max_price
from tasks.core.prices import OPERATING_SYSTEMS, Pool


@dataclass
class Ec2Model(Patching):
    boot_delay_seconds: float = 2.0
    boot_status_reads: int = 0
    boot_held: bool = False
    impaired_types: set[str] = field(default_factory=set)
    _status_reads: dict[str, int] = field(default_factory=dict)  # instance id -> DescribeInstanceStatus answers
    spot_capacity: dict[tuple[str, str], int] = field(default_factory=dict)
    on_demand_capacity: dict[tuple[str, str], int] = field(default_factory=dict)
    _booted_at: dict[str, float] = field(default_factory=dict)
    _tokens: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _patches: Patches = field(default_factory=Patches)
    market: SpotMarket = field(default_factory=SpotMarket)
    platforms: PlatformModel = field(default_factory=PlatformModel)
    visibility: VisibilityModel = field(default_factory=VisibilityModel)  # eventual consistency of describes
    _fleets: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # token -> (request, result)
    clock: Clock = field(default_factory=RealClock)  # what the end of an interruption notice is timed by
    _reclaims_stopped: threading.Event = field(default_factory=threading.Event)
    _fleet_lock: threading.Lock = field(default_factory=threading.Lock)
    reclaimed: dict[str, float] = field(default_factory=dict)  # instance id -> clock epoch when EC2 took it back
    price_interrupted: list[str] = field(default_factory=list)  # spots interrupted because the price passed
    _ceilings: dict[str, tuple[Pool, str, float, Any]] = field(default_factory=dict)  # id -> pool, OS, cap, backend

    def __post_init__(self) -> None:
        self.market.capacity = self.spot_capacity  # one capacity table for RunInstances and CreateFleet
        self.market.listeners.append(self._price_changed)

    def _price_changed(self, pool: Pool, platform: str, price: float) -> None:
        for instance_id, (spot_pool, spot_platform, ceiling, backend) in list(self._ceilings.items()):
            if (spot_pool, spot_platform) != (pool, platform) or price <= ceiling:
                continue
            instance = backend.get_instance(instance_id)
            if instance.state_code in (0, 16):
                backend.terminate_instances([instance_id])
                self.price_interrupted.append(instance_id)
            self._ceilings.pop(instance_id)

    def check(self, instance: Instance) -> str:
        started = self._booted_at.get(instance.id)
        if started is not None and time.monotonic() - started < self.boot_delay_seconds:
            return "initializing"
        reads = self._status_reads.get(instance.id, 0)
        if self.boot_held or (started is not None and 0 < reads <= self.boot_status_reads):
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
            reservation = self._patches.original(InstanceBackend, "run_instances")(
                backend, image_id, count, user_data, security_group_names, **kwargs
            )
            now = time.monotonic()
            for instance in reservation.instances:
                self._booted_at[instance.id] = now
            self.visibility.launched([i.id for i in reservation.instances])
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
            subnet = backend.get_subnet(kwargs["subnet_id"])  # type: ignore[attr-defined]  # on EC2Backend, not the mixin
            zone = subnet.availability_zone
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
            return self._patches.original(Fleets, "create_fleet")(response)
        response.error_on_dryrun()
        token, spot_options, configs = get("ClientToken"), get("SpotOptions", {}), get("LaunchTemplateConfigs", [])
        backend = response.ec2_backend
        with self._fleet_lock:  # not _lock: the launch below goes through _run_instances, which takes it
            fingerprint = _fingerprint(response)
            if token and token in self._fleets:
                first_request, first_result = self._fleets[token]
                if first_request != fingerprint:
                    raise EC2ClientError(
                        "IdempotentParameterMismatch",
                        f"Arguments on this idempotent request are inconsistent with arguments used in previous "
                        f"request(s) with client token '{token}'.")
                return ActionResult(first_result)
            offers: list[Any] = []
            sources: list[Any] = []
            invalid: list[Any] = []
            for config in configs:
                data = self._template_data(backend, config["LaunchTemplateSpecification"])
                if data.get("InstanceMarketOptions"):
                    raise EC2ClientError(
                        "InvalidParameterValue",
                        "The launch template of an EC2 Fleet cannot specify InstanceMarketOptions: the fleet's "
                        "own target capacity type and SpotOptions decide the market.")
                for override in config.get("Overrides") or [{}]:
                    zone = override.get("AvailabilityZone")
                    if override.get("SubnetId"):
                        zone = backend.get_subnet(override["SubnetId"]).availability_zone
                    pool = Pool(override.get("InstanceType") or data.get("InstanceType", ""), str(zone))
                    platform = self.platforms.platform_of(override.get("ImageId") or data.get("ImageId", ""))
                    offer = Offer(pool, max_price(override, spot_options), len(offers), platform,
                                  _vcpus(backend, pool.instance_type))
                    offers.append(offer)
                    sources.append((config["LaunchTemplateSpecification"], override))
                    if data.get("NetworkInterfaces") and override.get("SubnetId"):
                        invalid.append(offer)
            count = int(target.get("TotalTargetCapacity", 1))
            refused = [Refusal(o, "InvalidParameterCombination", "Network interfaces and an instance-level subnet "
                               "ID may not be specified on the same request") for o in invalid]
            chosen, refusals = self.market.allocate([o for o in offers if o not in invalid],
                                                    spot_options.get("AllocationStrategy", ""), count,
                                                    spot_vcpus_running=_running_spot_vcpus(backend))
            refusals = refused + refusals if chosen is None else []
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
            if chosen is not None:
                for launched in fleet.instances or []:
                    for instance_id in launched.get("InstanceIds", []):
                        self._ceilings[instance_id] = (chosen.pool, chosen.platform, self.market.ceiling(chosen),
                                                       backend)
            if launch:
                _tag_with_template(backend, launch[0]["LaunchTemplateSpecification"], fleet.instances or [])
            result = {"FleetId": fleet.id, "Instances": fleet.instances or [], "Errors": [
                {"LaunchTemplateAndOverrides": {"LaunchTemplateSpecification": sources[r.offer.index][0],
                                                "Overrides": sources[r.offer.index][1]},
                 "Lifecycle": "spot", "ErrorCode": r.code, "ErrorMessage": r.message}
                for r in refusals
            ]}
            if token:
                self._fleets[token] = (fingerprint, result)
            return ActionResult(result)

    @staticmethod
    def _template_data(backend: Any, spec: dict[str, Any]) -> dict[str, Any]:
        """The launch template version's data the fleet launches from (moto's own lookup and errors)."""
        if spec.get("LaunchTemplateId"):
            template = backend.get_launch_template(spec["LaunchTemplateId"])
        else:
            template = backend.get_launch_template_by_name(spec.get("LaunchTemplateName", ""))
        return dict(template.get_version(spec.get("Version") or "$Default").data)

    def _spot_price_history(self, response: SpotInstances) -> ActionResult:
        get = response._get_param
        filters = response._filters_from_querystring()
        types = list(get("InstanceTypes", []) or filters.get("instance-type", []))
        # No zone asked: every zone of the request's region (local serve serves several regions).
        zones = list(filters.get("availability-zone", [])) or [f"{response.region}{s}" for s in ZONE_SUFFIXES]
        descriptions = set(get("ProductDescriptions", []) or filters.get("product-description", []))
        platforms = [os.platform_details for os in OPERATING_SYSTEMS.values()
                     if not descriptions or descriptions & set(os.spot_product_descriptions)]
        rows = self.market.history(types, zones, _when(get("StartTime")), _when(get("EndTime")), platforms) \
            if platforms else []
        return ActionResult({"SpotPriceHistory": [
            {"InstanceType": pool.instance_type, "AvailabilityZone": pool.availability_zone,
             "ProductDescription": OPERATING_SYSTEMS[platform].spot_description, "SpotPrice": f"{price:.6f}",
             "Timestamp": at}
            for at, pool, price, platform in rows
        ]})

    def reclaim(self, instance_id: str, at: float) -> None:
        """EC2 takes the spot back at `at` (the end of its interruption notice, on `clock.epoch()`), unless the
        embedded AWS stops first."""

        def take_back() -> None:
            if not self.clock.sleep_until_epoch(at, self._reclaims_stopped):
                return
            ec2 = sessions.session(region_name=self.market.region).client("ec2")
            ec2.terminate_instances(InstanceIds=[instance_id])
            self.reclaimed[instance_id] = self.clock.epoch()

        threading.Thread(target=take_back, name=f"reclaim-{instance_id}", daemon=True).start()

    def install(self) -> None:
        self._reclaims_stopped.clear()
        self.platforms.install()
        self.visibility.install()  # before ours: our DescribeInstanceStatus counts the answers it lets through
        super().install()

    def uninstall(self) -> None:
        super().uninstall()
        self.visibility.uninstall()
        self.platforms.uninstall()
        self._reclaims_stopped.set()

    def _patch(self, patches: Patches) -> None:
        model = self

        def describe_instance_status(backend: InstanceBackend, *args: Any, **kwargs: Any) -> Any:
            found = patches.original(InstanceBackend, "describe_instance_status")(backend, *args, **kwargs)
            for instance in found:  # one more answer for each: boot_status_reads counts these
                model._status_reads[instance.id] = model._status_reads.get(instance.id, 0) + 1
            return found

        patches.replace(InstanceBackend, describe_instance_status=describe_instance_status)
        patches.replace(Fleets, create_fleet=lambda response: model._create_fleet(response))
        patches.replace(SpotInstances, describe_spot_price_history=lambda response: model._spot_price_history(response))

        def run_instances(backend: InstanceBackend, image_id: str, count: int, user_data: Any,
                          security_group_names: list[str], **kwargs: Any) -> Any:
            return model._run_instances(backend, image_id, count, user_data, security_group_names, **kwargs)

        patches.replace(InstanceBackend, run_instances=run_instances)
        patches.replace(Instance, instance_status=property(self._status), system_status=property(self._status))


def _fingerprint(response: Fleets) -> str:
    """Every parameter of the request but the token itself (EC2 compares them all, region and AZ aside)."""
    params = {k: v for k, v in response.querystring.items() if k not in ("ClientToken", "Action", "Version")}
    return json.dumps(params, sort_keys=True, default=str)


def _vcpus(backend: Any, instance_type: str) -> int:
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    return int(INSTANCE_TYPES.get(instance_type, {}).get("VCpuInfo", {}).get("DefaultVCpus", 0))


def _running_spot_vcpus(backend: Any) -> int:
    """vCPUs of the region's pending and running spot instances: what EC2's spot quota counts."""
    return sum(_vcpus(backend, i.instance_type) for r in backend.reservations.values() for i in r.instances
               if i.lifecycle == "spot" and i.state_code in (0, 16))


def _when(raw: Any) -> datetime | None:
    """A request timestamp (ISO 8601 text from the query string) as an aware datetime."""
    if not raw:
        return None
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _tag_with_template(backend: Any, spec: dict[str, Any], launched: list[dict[str, Any]]) -> None:
    """EC2 tags every instance launched from a launch template with `aws:ec2launchtemplate:id` and `:version`
    (the version number, `$Latest`/`$Default` resolved); moto's fleets do not, and rollouts match on them."""
    template = (backend.get_launch_template(spec["LaunchTemplateId"]) if spec.get("LaunchTemplateId")
                else backend.get_launch_template_by_name(spec["LaunchTemplateName"]))
    version = str(spec.get("Version") or "$Default")
    if version == "$Latest":
        version = str(template.latest_version_number)
    elif version == "$Default":
        version = str(template.default_version_number)
    ids = [i for entry in launched for i in entry.get("InstanceIds", [])]
    if ids:
        backend.create_tags(ids, {"aws:ec2launchtemplate:id": template.id, "aws:ec2launchtemplate:version": version})
