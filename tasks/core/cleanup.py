"""What the failure path does, decided from what is true now, not from how far the execution got."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CleanupPlan:
    remove_spot: bool  # leave the group with decrement (terminating it): undo our attach
    terminate_spot: bool
    keep_spot: bool  # the on-demand already left the group; the attached spot serves in its place


def plan_cleanup(*, spot_running: bool, spot_member_state: str | None, on_demand_member: bool) -> CleanupPlan:
    """Roll back to the group as it was; never touch the on-demand instance.

    A spot outside the group is terminated. An attached spot leaves the group (decrementing desired back) and is
    terminated while the on-demand is still a member; once the on-demand has left the group the spot is the
    capacity that serves, so it stays.
    """
    if not spot_running:
        return CleanupPlan(remove_spot=False, terminate_spot=False, keep_spot=False)
    if spot_member_state is None:
        return CleanupPlan(remove_spot=False, terminate_spot=True, keep_spot=False)
    if on_demand_member:
        return CleanupPlan(remove_spot=True, terminate_spot=True, keep_spot=False)
    return CleanupPlan(remove_spot=False, terminate_spot=False, keep_spot=True)
