"""Web fleets: who serves behind the load balancers, and when a doomed spot must start draining.

Facts come as `health`: one entry per load balancer of the group (a target group's ARN, or `elb:<name>` for a
classic ELB) mapping instance id -> the state that load balancer reports (`healthy`, `initial`, `draining`,
... for target groups; `InService`, `OutOfService`, `Unknown` for classic ELBs). An instance serves only when
it is InService in the group AND healthy in every one of the group's load balancers: AWS runs ELB health checks
after registration, in parallel with the group's own, so InService alone does not mean it gets traffic.
"""

from __future__ import annotations

from collections.abc import Mapping

from tasks.core.model import Group

Health = Mapping[str, Mapping[str, str]]
SERVING_STATES = ("healthy", "InService")
# The replacement always gets at least this share of the notice to become healthy before the doomed spot is
# deregistered, however long the deregistration delay: with a 120 s notice, 30 s.
MIN_REPLACEMENT_SHARE = 4


def not_serving(health: Health, instance_id: str) -> str | None:
    """Why the instance gets no traffic from some load balancer of its group, or None when it serves in all."""
    for balancer in sorted(health):
        state = health[balancer].get(instance_id, "not registered")
        if state not in SERVING_STATES:
            return f"{instance_id} is {state} in {label(balancer)}"
    return None


def serving_ids(group: Group, health: Health) -> set[str]:
    """Members that take traffic: InService in the group and, behind load balancers, healthy in every one."""
    return {m.instance_id for m in group.members if m.in_service and not_serving(health, m.instance_id) is None}


def label(balancer: str) -> str:
    """`target group web-tg` from its ARN, `classic ELB web` from `elb:web`."""
    if balancer.startswith("elb:"):
        return f"classic ELB {balancer[4:]}"
    name = balancer.split(":targetgroup/")[-1].split("/")[0] if ":targetgroup/" in balancer else balancer
    return f"target group {name}"


def release_by(warned_at: float, notice_seconds: int, drain_seconds: int, margin_seconds: int) -> float:
    """Epoch seconds by which the doomed spot is deregistered, whether or not its replacement is healthy yet.

    Behind load balancers: the notice's end minus the longest deregistration delay, so connections drain before
    EC2 takes the instance; a delay longer than the notice allows is capped so the replacement still gets a
    quarter of the notice to become healthy (connections still open at the reclaim are cut). Without load
    balancers: the notice's end minus `margin_seconds`, but never before half the notice.
    """
    if drain_seconds <= 0:
        return warned_at + max(notice_seconds - margin_seconds, notice_seconds // 2)
    floor = notice_seconds // MIN_REPLACEMENT_SHARE
    return warned_at + max(notice_seconds - drain_seconds, floor)
