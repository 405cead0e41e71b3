"""Capacity Rebalancing, which moto does not model: when EC2 sends a rebalance recommendation for a spot in a
group with CapacityRebalance on, Auto Scaling itself launches a replacement (from the group's own template,
through its lifecycle hooks) and then terminates the at-risk spot through the group (draining, termination
hooks), desired capacity unchanged. Simplification: AWS waits for the new instance to pass its health checks
before it terminates the old one; here the old one starts terminating as soon as the new one is launched (its
draining still holds it in service behind the load balancers meanwhile)."""

from __future__ import annotations

from moto.autoscaling.models import ASG_NAME_TAG, autoscaling_backends

from asg_optimizer.local.instance_lifecycle import InstanceLifecycleModel


def recommend(lifecycle: InstanceLifecycleModel, account: str, region: str, instance_id: str) -> str | None:
    """EC2's rebalance recommendation for `instance_id`; the replacement's id when the group acted, else None."""
    backend = autoscaling_backends[account][region]
    for group in backend.autoscaling_groups.values():
        state = next((s for s in group.instance_states if s.instance.id == instance_id), None)
        if state is None or not group.capacity_rebalance or state.instance.lifecycle != "spot":
            continue
        before = {s.instance.id for s in group.instance_states}
        group.replace_autoscaling_group_instances(1, {**group.get_propagated_tags(), ASG_NAME_TAG: group.name})
        launched = next(s.instance.id for s in group.instance_states if s.instance.id not in before)
        lifecycle.terminate(backend, instance_id, should_decrement=False)
        return launched
    return None
