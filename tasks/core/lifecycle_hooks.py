"""Launch lifecycle hooks: AttachInstances skips them (AWS: hooks "do not apply when you attach or detach
instances"), so whatever a team's launch hook does (bootstrap, registration, secrets) never happens for a spot
we attach. Such a group is left alone unless its owners accept that with `AsgOptimiser:LaunchHooks=bypass`.
Termination hooks are no obstacle: the on-demand leaves through the group, so they run."""

from __future__ import annotations

from collections.abc import Iterable

from tasks.core.tags import LAUNCH_HOOKS, LAUNCH_HOOKS_BYPASS

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"


def launch_hook_refusal(asg_name: str, hooks: Iterable[tuple[str, str]], *, bypass: bool) -> str | None:
    """`hooks` = (name, LifecycleTransition) of the group's lifecycle hooks; why we must not swap, or None."""
    launching = sorted(name for name, transition in hooks if transition == LAUNCHING)
    if not launching or bypass:
        return None
    named = ", ".join(repr(n) for n in launching)
    return (f"ASG {asg_name} has launch lifecycle hook {named}, which attached spots skip; "
            f"tag {LAUNCH_HOOKS}={LAUNCH_HOOKS_BYPASS} to swap anyway")
