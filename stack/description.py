"""The one description of the deployed stack. The Pulumi program and the embedded AWS both read it, so the
functions, state machines and schedules they create cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATEMACHINES = ROOT / "statemachines"
DEFAULT_PREFIX = "asg-optimizer"


@dataclass(frozen=True)
class Function:
    """A Lambda function: `key` names it in the stack; `handler` is the real `module.callable` in tasks/."""

    key: str
    handler: str
    description: str
    timeout: int = 60
    memory: int = 256
    # Names of the environment variables the handler reads beyond Powertools' own (values set at deploy).
    environment: tuple[str, ...] = ()

    def name(self, prefix: str = DEFAULT_PREFIX) -> str:
        return f"{prefix}-{self.key}"


@dataclass(frozen=True)
class StateMachine:
    """A Standard state machine from an ASL file; `substitutions` maps each `${Placeholder}` to a function key."""

    key: str
    definition_file: str
    substitutions: dict[str, str] = field(default_factory=dict)
    # `${Placeholder}` -> the key of another state machine this one starts executions of (.sync:2 children).
    machines: dict[str, str] = field(default_factory=dict)

    def name(self, prefix: str = DEFAULT_PREFIX) -> str:
        return f"{prefix}-{self.key}"

    @property
    def path(self) -> Path:
        return STATEMACHINES / self.definition_file


@dataclass(frozen=True)
class Schedule:
    """Run `function` on a schedule; `expression` is the default, overridable by stack config."""

    key: str
    function: str
    expression: str
    description: str


@dataclass(frozen=True)
class EventRule:
    """Deliver events matching `pattern` to `function` (an EventBridge rule in AWS, a direct call locally)."""

    key: str
    function: str
    pattern: dict[str, Any]
    description: str


@dataclass(frozen=True)
class Table:
    """A DynamoDB table (on-demand billing) keyed by one string attribute, with TTL on `ttl_attribute`; functions
    find its name in the environment variable `environment`."""

    key: str
    partition_key: str
    ttl_attribute: str
    environment: str
    description: str

    def name(self, prefix: str = DEFAULT_PREFIX) -> str:
        return f"{prefix}-{self.key}"


@dataclass(frozen=True)
class Stack:
    functions: tuple[Function, ...]
    state_machines: tuple[StateMachine, ...]
    schedules: tuple[Schedule, ...] = ()
    rules: tuple[EventRule, ...] = ()
    tables: tuple[Table, ...] = ()

    def function(self, key: str) -> Function:
        return next(f for f in self.functions if f.key == key)

    def state_machine(self, key: str) -> StateMachine:
        return next(s for s in self.state_machines if s.key == key)


REPLACE = "replace-instance"
INTERRUPTION = "spot-interruption"
ROLLOUT = "rollout"
# Set at deploy to the state machines' ARNs, for the functions that start executions.
REPLACE_STATE_MACHINE_ARN = "REPLACE_STATE_MACHINE_ARN"
INTERRUPTION_STATE_MACHINE_ARN = "INTERRUPTION_STATE_MACHINE_ARN"
ROLLOUT_STATE_MACHINE_ARN = "ROLLOUT_STATE_MACHINE_ARN"
STATE_MACHINE_ARN_ENVIRONMENT = {REPLACE_STATE_MACHINE_ARN: REPLACE, INTERRUPTION_STATE_MACHINE_ARN: INTERRUPTION,
                                 ROLLOUT_STATE_MACHINE_ARN: ROLLOUT}
COOLDOWN_TABLE = "COOLDOWN_TABLE"
# The fleet-wide pause's stack settings (pauseAlarms, pauseFailureBudget), for the functions that start swaps.
PAUSE_ALARMS = "PAUSE_ALARMS"
PAUSE_FAILURE_BUDGET = "PAUSE_FAILURE_BUDGET"
PAUSE_SETTINGS = (PAUSE_ALARMS, PAUSE_FAILURE_BUDGET)
# Commitment awareness's stack settings (commitments, savingsPlanReservePerHour), for the functions that read
# the account's Reserved Instances and Savings Plans.
COMMITMENTS = "COMMITMENTS"
SAVINGS_PLAN_RESERVE_PER_HOUR = "SAVINGS_PLAN_RESERVE_PER_HOUR"
COMMITMENT_SETTINGS = (COMMITMENTS, SAVINGS_PLAN_RESERVE_PER_HOUR)

STACK = Stack(
    functions=(
        Function("validate", "tasks.validate.handler", "Refuse a swap that must not start; claim the instance",
                 environment=(COOLDOWN_TABLE, *COMMITMENT_SETTINGS)),
        Function("launch-spot", "tasks.launch_spot.handler", "Launch the spot replacement (CreateFleet, candidates)",
                 environment=(COOLDOWN_TABLE,)),
        Function("launch-on-demand", "tasks.launch_on_demand.handler",
                 "Launch an on-demand replacement (RunInstances from the group's template)",
                 environment=(COOLDOWN_TABLE,)),
        Function("check-spot", "tasks.check_spot.handler", "Poll the spot's status checks"),
        Function("attach-spot", "tasks.attach_spot.handler", "Make room in the ASG and attach the spot",
                 environment=(COOLDOWN_TABLE,)),
        Function("retire-on-demand", "tasks.retire_on_demand.handler", "Terminate the on-demand through the ASG",
                 environment=(COOLDOWN_TABLE,)),
        Function("restore-group", "tasks.restore_group.handler", "Give back what the swap took from the ASG",
                 environment=(COOLDOWN_TABLE,)),
        Function("cleanup", "tasks.cleanup.handler", "Roll back a failed swap"),
        Function("raise-capacity", "tasks.raise_capacity.handler", "Spot interrupted: one more instance in its group",
                 environment=(COOLDOWN_TABLE,)),
        Function("release-spot", "tasks.release_spot.handler", "Spot interrupted: take it out once replaced",
                 environment=(COOLDOWN_TABLE,)),
        # These start executions, so they need the state machine's ARN: deploy creates them after it.
        Function("scanner", "tasks.scan.handler", "Find opted-in on-demand instances and start their swaps",
                 timeout=300, memory=512,
                 environment=(REPLACE_STATE_MACHINE_ARN, COOLDOWN_TABLE, *PAUSE_SETTINGS, *COMMITMENT_SETTINGS)),
        Function("sweep", "tasks.sweep.handler", "Terminate orphaned spots; repair groups a crashed swap left held",
                 timeout=120, environment=(REPLACE_STATE_MACHINE_ARN, INTERRUPTION_STATE_MACHINE_ARN,
                                           ROLLOUT_STATE_MACHINE_ARN, COOLDOWN_TABLE)),
        Function("launch-event", "tasks.launch_event.handler", "Swap a newly launched on-demand after its grace",
                 environment=(REPLACE_STATE_MACHINE_ARN, COOLDOWN_TABLE, *PAUSE_SETTINGS, *COMMITMENT_SETTINGS)),
        Function("spot-interruption", "tasks.spot_events.on_interruption",
                 "Spot interruption warning: start the on-demand fallback",
                 environment=(INTERRUPTION_STATE_MACHINE_ARN,)),
        Function("spot-rebalance", "tasks.spot_events.on_rebalance",
                 "Rebalance recommendation: replace the spot from another pool",
                 environment=(REPLACE_STATE_MACHINE_ARN, COOLDOWN_TABLE, *PAUSE_SETTINGS)),
        # Rollouts (docs/rollouts.md): plan the batches, gate each one, hold at checkpoints until resumed.
        Function("rollout-plan", "tasks.rollout_plan.handler",
                 "Rollout: refuse, or pick the instances not on the target, in batches",
                 environment=(REPLACE_STATE_MACHINE_ARN, COOLDOWN_TABLE, *PAUSE_SETTINGS, *COMMITMENT_SETTINGS)),
        Function("rollout-gate", "tasks.rollout_gate.handler",
                 "Rollout: settle a batch, read its alarms, decide (next, checkpoint, rollback, stop, done)",
                 environment=(REPLACE_STATE_MACHINE_ARN, COOLDOWN_TABLE, *PAUSE_SETTINGS)),
        Function("rollout-checkpoint", "tasks.rollout_checkpoint.handler",
                 "Rollout: keep the checkpoint's task token for `rollout resume`", environment=(COOLDOWN_TABLE,)),
        Function("rollout-release", "tasks.rollout_release.handler",
                 "Rollout: every ending drops the group's rollout claim", environment=(COOLDOWN_TABLE,)),
    ),
    state_machines=(
        StateMachine(
            REPLACE,
            "replace_instance.asl.json",
            {
                "ValidateFunctionArn": "validate",
                "LaunchSpotFunctionArn": "launch-spot",
                "LaunchOnDemandFunctionArn": "launch-on-demand",
                "CheckSpotFunctionArn": "check-spot",
                "AttachSpotFunctionArn": "attach-spot",
                "RetireOnDemandFunctionArn": "retire-on-demand",
                "RestoreGroupFunctionArn": "restore-group",
                "CleanupFunctionArn": "cleanup",
            },
        ),
        StateMachine(
            INTERRUPTION,
            "spot_interruption.asl.json",
            {
                "RaiseCapacityFunctionArn": "raise-capacity",
                "ReleaseSpotFunctionArn": "release-spot",
                "RestoreGroupFunctionArn": "restore-group",
            },
        ),
        StateMachine(
            ROLLOUT,
            "rollout.asl.json",
            {
                "RolloutPlanFunctionArn": "rollout-plan",
                "RolloutGateFunctionArn": "rollout-gate",
                "RolloutCheckpointFunctionArn": "rollout-checkpoint",
                "RolloutReleaseFunctionArn": "rollout-release",
            },
            machines={"ReplaceStateMachineArn": REPLACE},
        ),
    ),
    schedules=(
        Schedule("scan", "scanner", "rate(5 minutes)", "Scan opted-in groups and start swaps"),
        Schedule("sweep", "sweep", "rate(10 minutes)", "Terminate orphaned spots; repair held groups"),
    ),
    rules=(
        EventRule(
            "instance-launched",
            "launch-event",
            {"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance Launch Successful"]},
            "A group launched an instance: swap it to spot after its grace period",
        ),
        EventRule(
            "spot-interruption",
            "spot-interruption",
            {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
            "A spot gets its two-minute warning: replacement capacity in before it goes",
        ),
        EventRule(
            "spot-rebalance",
            "spot-rebalance",
            {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
            "A spot is at elevated risk: replace it from another pool",
        ),
    ),
    tables=(
        Table("cooldowns", "cooldown_key", "expires_at", COOLDOWN_TABLE,
              "Coordination: spot pools and instances cooling down (TTL removes them), group records (the lease "
              "and what we changed, docs/coordination.md) and instance claims"),
    ),
)
