"""Mixed-instances groups as AWS runs them (moto launches every instance from the default template and reports
that template for every member).

- Each instance the group launches takes one override: the type, and the override's own
  LaunchTemplateSpecification when it has one (an arm64 override carries its arm64 AMI), else the group's
  default template. The override chosen is the one with the fewest members so far, in override order (a
  deterministic stand-in for the allocation strategies).
- DescribeAutoScalingGroups reports each member's own `LaunchTemplate` and, when the override is weighted, its
  `WeightedCapacity` (AttachInstances: the weight of the attached instance's type among the overrides, 1 when
  the type is not one of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup, InstanceState

from asg_optimizer.local.patching import Patches, Patching


def overrides_of(group: FakeAutoScalingGroup) -> list[dict[str, Any]]:
    policy = group.mixed_instances_policy or {}
    return list(policy.get("LaunchTemplate", {}).get("Overrides") or [])


@dataclass
class MixedInstancesModel(Patching):
    _patches: Patches = field(default_factory=Patches)

    @staticmethod
    def _choose(group: FakeAutoScalingGroup, overrides: list[dict[str, Any]]) -> dict[str, Any]:
        counts = [sum(1 for s in group.instance_states if s.instance.instance_type == o.get("InstanceType"))
                  for o in overrides]
        return overrides[counts.index(min(counts))]

    def _launch_one(self, group: FakeAutoScalingGroup, override: dict[str, Any], tags: dict[str, str]) -> None:
        spec = override.get("LaunchTemplateSpecification") or {}
        default_template, default_version = group.ec2_launch_template, group.launch_template_version
        ec2 = group.autoscaling_backend.ec2_backend
        before = {id(s) for s in group.instance_states}
        try:
            if spec.get("LaunchTemplateId"):
                group.ec2_launch_template = ec2.get_launch_template(spec["LaunchTemplateId"])
            elif spec.get("LaunchTemplateName"):
                group.ec2_launch_template = ec2.get_launch_template_by_name(spec["LaunchTemplateName"])
            if spec:
                group.launch_template_version = spec.get("Version") or "$Default"
            template, version = group.ec2_launch_template, group.launch_template_version
            self._patches.original(FakeAutoScalingGroup, "replace_autoscaling_group_instances")(group, 1, dict(tags))
        finally:
            group.ec2_launch_template, group.launch_template_version = default_template, default_version
        for state in group.instance_states:
            if id(state) in before:
                continue
            state.instance.instance_type = state.instance_type = override.get("InstanceType", state.instance_type)
            assert template is not None  # the override resolved to a template before its launch
            # moto's InstanceState has no field for either; DescribeAutoScalingGroups' model reads them back.
            vars(state)["own_template"] = {
                "LaunchTemplateId": template.id, "LaunchTemplateName": template.name, "Version": str(version)}
            if override.get("WeightedCapacity"):
                vars(state)["weighted_capacity"] = str(override["WeightedCapacity"])

    def _patch(self, patches: Patches) -> None:
        model, original = self, patches.original

        def replace(group: FakeAutoScalingGroup, count: int, tags: dict[str, str]) -> None:
            overrides = overrides_of(group)
            if not overrides:
                return original(FakeAutoScalingGroup, "replace_autoscaling_group_instances")(group, count, tags)
            for _ in range(count):
                model._launch_one(group, model._choose(group, overrides), tags)
            return None

        def launch_template(state: InstanceState) -> dict[str, Any] | None:
            own = state.__dict__.get("own_template")
            return own if own is not None else original(InstanceState, "launch_template").fget(state)

        def attach(backend: AutoScalingBackend, group_name: str, instance_ids: list[str]) -> None:
            original(AutoScalingBackend, "attach_instances")(backend, group_name, instance_ids)
            group = backend.autoscaling_groups[group_name]
            weights = {o.get("InstanceType"): o.get("WeightedCapacity") for o in overrides_of(group)}
            if any(weights.values()):
                for state in group.instance_states:
                    if state.instance.id in instance_ids:
                        vars(state)["weighted_capacity"] = str(weights.get(state.instance.instance_type) or 1)

        patches.replace(FakeAutoScalingGroup, replace_autoscaling_group_instances=replace)
        patches.replace(InstanceState, launch_template=property(launch_template))
        patches.replace(AutoScalingBackend, attach_instances=attach)
