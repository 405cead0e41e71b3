"""What the stack will deploy, as plain data, computed and validated before any resource exists.

A Pulumi program that raises halfway has already registered (and `pulumi up` then creates) the resources before
the error. So everything that can be wrong — a target that is not in the stack, a function without policy, an
environment variable nobody maps, an ASL placeholder without function, a layer ARN that cannot be defaulted —
is computed here first; the component only turns this blueprint into resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra import iam
from infra.config import Settings
from infra.dashboard import dashboard_body
from infra.environment import function_environment
from infra.names import Scope, duplicate_names
from stack.description import EventRule, Schedule, Stack
from stack.render import render_state_machine


class StackError(ValueError):
    pass


@dataclass(frozen=True)
class FunctionBlueprint:
    policy: dict[str, Any]
    environment: dict[str, str]
    event_target: bool  # invoked asynchronously by EventBridge: gets the dead-letter queue


@dataclass(frozen=True)
class Blueprint:
    layer_arn: str
    functions: dict[str, FunctionBlueprint]
    state_machine_policies: dict[str, dict[str, Any]]
    events_policies: dict[str, dict[str, Any]]  # state machines a rule or schedule starts directly
    dead_letter_queue_policy: dict[str, Any] | None
    dashboard_body: str


def _check_targets(stack: Stack, prefix: str) -> None:
    clashes = duplicate_names(prefix, stack)
    if clashes:
        raise StackError(f"resource names clash: {'; '.join(clashes)}")
    functions, machines = {f.key for f in stack.functions}, {m.key for m in stack.state_machines}
    for kind, targets in (("schedule", stack.schedules), ("rule", stack.rules)):
        for target in targets:
            if target.function not in functions | machines:
                raise StackError(f"{kind} {target.key!r} targets {target.function!r}, which is neither a function "
                                 "nor a state machine of the stack")
    for machine in stack.state_machines:
        unknown = sorted(set(machine.substitutions.values()) - functions)
        if unknown:
            raise StackError(f"state machine {machine.key!r} invokes unknown function(s) {', '.join(unknown)}")


def blueprint_stack(settings: Settings, scope: Scope, stack: Stack) -> Blueprint:
    _check_targets(stack, scope.prefix)
    # A KMS key serves its own region only: each region's launcher may use that region's keys.
    keys = tuple(k for k in settings.kms_key_arns if k.split(":")[3] == scope.region)
    ctx = iam.Context(scope, stack, settings.instance_role_pattern, keys)
    targets: list[Schedule | EventRule] = [*stack.schedules, *stack.rules]
    targeted = {t.function for t in targets}
    # A key naming both a function and a state machine (`spot-interruption`) targets the function: rules and
    # schedules deliver to functions; a machine is started directly only when no function has its key.
    started = targeted - {f.key for f in stack.functions}
    functions = {
        f.key: FunctionBlueprint(
            policy=iam.function_policy(ctx, f, dead_letter=f.key in targeted),
            environment=function_environment(ctx, f, settings),
            event_target=f.key in targeted,
        )
        for f in stack.functions
    }
    for machine in stack.state_machines:  # a renamed placeholder fails here, not after half a deployment
        render_state_machine(machine, {f.key: ctx.function_arn(f.key) for f in stack.functions},
                             {m.key: ctx.machine_arn(m.key) for m in stack.state_machines})
    return Blueprint(
        layer_arn=settings.layer_arn(scope.partition, scope.region),
        functions=functions,
        state_machine_policies={m.key: iam.state_machine_policy(ctx, m) for m in stack.state_machines},
        events_policies={m.key: iam.events_policy(ctx, m) for m in stack.state_machines if m.key in started},
        dead_letter_queue_policy=iam.dead_letter_queue_policy(ctx, [t.key for t in targets]) if targets else None,
        dashboard_body=dashboard_body(scope, stack),
    )
