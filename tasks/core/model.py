"""Plain facts about groups and instances, as the decision core sees them (built from AWS responses elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TemplateRef:
    """A launch template as the group names it: by id or by name, and a version."""

    template_id: str | None
    name: str | None
    version: str = "$Default"

    def same_template(self, other: TemplateRef) -> bool:
        return bool((self.template_id and self.template_id == other.template_id)
                    or (self.name and self.name == other.name))


@dataclass(frozen=True)
class Override:
    """One MixedInstancesPolicy override: a type, its own template if it has one, its weight if weighted."""

    instance_type: str
    launch_template: TemplateRef | None = None
    weighted_capacity: str | None = None


@dataclass(frozen=True)
class Member:
    """One instance as the Auto Scaling group lists it."""

    instance_id: str
    lifecycle_state: str
    health_status: str = "Healthy"
    protected: bool = False
    availability_zone: str = ""
    instance_type: str = ""
    launch_template: TemplateRef | None = None  # the member's own template (mixed-instances groups: its override's)
    weighted_capacity: str | None = None

    @property
    def in_service(self) -> bool:
        return self.lifecycle_state == "InService"


@dataclass(frozen=True)
class Group:
    """An Auto Scaling group: sizes, tags, members, suspended processes and its own launch template."""

    name: str
    desired: int
    min_size: int
    max_size: int
    tags: dict[str, str] = field(default_factory=dict)
    members: tuple[Member, ...] = ()
    suspended: frozenset[str] = frozenset()
    launch_template_id: str | None = None
    launch_template_name: str | None = None
    launch_template_version: str = "$Default"
    health_check_grace_period: int = 300
    status: str | None = None
    zones: tuple[str, ...] = ()  # the group's configured Availability Zones
    target_group_arns: tuple[str, ...] = ()
    load_balancer_names: tuple[str, ...] = ()  # classic ELBs
    capacity_rebalance: bool = False
    overrides: tuple[Override, ...] = ()  # MixedInstancesPolicy overrides; empty for a plain group
    desired_capacity_type: str = "units"

    @property
    def behind_load_balancer(self) -> bool:
        return bool(self.target_group_arns or self.load_balancer_names)

    @property
    def default_template(self) -> TemplateRef:
        return TemplateRef(self.launch_template_id, self.launch_template_name, self.launch_template_version)

    def member(self, instance_id: str) -> Member | None:
        return next((m for m in self.members if m.instance_id == instance_id), None)

    def zone_counts(self) -> dict[str, int]:
        """Instances per configured zone (zones with none included), as the group balances them."""
        counts = dict.fromkeys(self.zones, 0)
        for m in self.members:
            if m.availability_zone and not m.lifecycle_state.startswith(("Terminating", "Detach")):
                counts[m.availability_zone] = counts.get(m.availability_zone, 0) + 1
        return counts

    @property
    def in_service_count(self) -> int:
        return sum(1 for m in self.members if m.in_service)


@dataclass(frozen=True)
class Instance:
    """An EC2 instance as DescribeInstances reports it."""

    instance_id: str
    state: str
    instance_type: str
    subnet_id: str | None
    availability_zone: str
    lifecycle: str | None = None  # "spot" for spot; None means on-demand
    tags: dict[str, str] = field(default_factory=dict)
    launch_time: str | None = None
    platform_details: str | None = None  # EC2's billing platform ("Windows", ...); absent: Linux/UNIX
    image_id: str = ""
    tenancy: str = "default"  # Placement.Tenancy: which commitments could pay for it

    @property
    def on_demand(self) -> bool:
        return self.lifecycle not in ("spot", "scheduled", "capacity-block")
