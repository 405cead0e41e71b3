"""moto launches every instance of a group into the first subnet of VPCZoneIdentifier; AWS spreads them evenly
over the group's Availability Zones. The swap's zone decisions (suspend AZRebalance only when the spot would
unbalance the zones) need the real spread, so the embedded AWS launches each instance into the least-populated
zone, as AWS does."""

from __future__ import annotations

from moto.autoscaling.models import FakeAutoScalingGroup

from asg_optimizer.local.patching import Patches

_patches = Patches()


def _zone_of(group: FakeAutoScalingGroup, subnet_id: str) -> str:
    return group.autoscaling_backend.ec2_backend.get_subnet(subnet_id).availability_zone


def _spread(group: FakeAutoScalingGroup, count_needed: int, propagated_tags: dict[str, str]) -> None:
    launch = _patches.original(FakeAutoScalingGroup, "replace_autoscaling_group_instances")
    subnets = [s for s in (group.vpc_zone_identifier or "").split(",") if s]
    if len(subnets) <= 1:
        return launch(group, count_needed, propagated_tags)
    configured = group.vpc_zone_identifier
    zones = {subnet: _zone_of(group, subnet) for subnet in subnets}
    try:
        for _ in range(count_needed):
            counts = dict.fromkeys(zones.values(), 0)
            for state in group.instance_states:
                subnet = state.instance.subnet_id
                zone = (zones.get(subnet) or _zone_of(group, subnet)) if subnet else None
                if zone in counts:
                    counts[zone] += 1
            group.vpc_zone_identifier = min(subnets, key=lambda s: (counts[zones[s]], subnets.index(s)))
            launch(group, 1, dict(propagated_tags))
    finally:
        group.vpc_zone_identifier = configured
    return None


def install() -> None:
    _patches.install(lambda p: p.replace(FakeAutoScalingGroup, replace_autoscaling_group_instances=_spread))


def uninstall() -> None:
    _patches.undo()
