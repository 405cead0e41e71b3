"""Mixed-instances groups: which template a spot launches from, which types it may be, and which groups we refuse.

- The spot launches from the launch template of the instance it replaces (its own `LaunchTemplate` in
  DescribeAutoScalingGroups, which for a mixed group is its override's template), so an arm64 override keeps its
  arm64 AMI; the group's default template only when the member names none.
- Its candidate types are the group's override types that launch from that same template (the same AMI, hence
  the same architecture); AllowedTypes/DeniedTypes still apply on top.
- Weighted groups are refused: desired capacity, the on-demand floor, readiness and the invariants all count
  instances, and a replacement of another weight would change the group's capacity in units. A group is
  weighted when any override has a WeightedCapacity other than 1, or its DesiredCapacityType is not `units`.
"""

from __future__ import annotations

from tasks.core.model import Group, Member, TemplateRef


def weighted_refusal(group: Group) -> str | None:
    if group.desired_capacity_type != "units":
        return (f"ASG {group.name} counts capacity in {group.desired_capacity_type} (DesiredCapacityType): "
                "weighted groups are not swapped")
    weighted = sorted({f"{o.instance_type}={o.weighted_capacity}" for o in group.overrides
                       if o.weighted_capacity not in (None, "1")})
    if weighted:
        return (f"ASG {group.name} has weighted overrides ({', '.join(weighted)}): weighted groups are not "
                "swapped, since a spot of another weight would change its capacity")
    return None


def template_for(group: Group, member: Member | None) -> TemplateRef:
    """The template the replacing spot launches from: the member's own, else the group's default."""
    if member is not None and member.launch_template is not None:
        return member.launch_template
    return group.default_template


def override_types(group: Group, template: TemplateRef) -> tuple[str, ...] | None:
    """Types a spot from `template` may be: the overrides launching from it (an override without a template of
    its own uses the default). None for a group without overrides: every compatible type is a candidate."""
    if not group.overrides:
        return None
    default = group.default_template
    return tuple(o.instance_type for o in group.overrides if (o.launch_template or default).same_template(template))
