"""The step contracts of the workflows (replace, interruption, rollout): what each Task state's handler reads from
its event (`...Input`) and what it returns (`...Result`), so mypy checks every key a handler reads or produces, and
tests/test_step_contracts.py walks each ASL definition to prove every Required input key is produced upstream on
every path (a missing key would otherwise be found only in the middle of a swap). Required is what the handler
reads with `[]`; NotRequired is what it reads with `.get` (absent on some path) or a result gives on one outcome.

This module does not use `from __future__ import annotations`: on Python 3.11 string annotations hide
NotRequired from TypedDict's runtime `__required_keys__`, which the walker reads."""

from collections.abc import Sequence
from typing import Any, Literal, NotRequired, TypedDict, final

# --- the replacement workflow (statemachines/replace_instance.asl.json) -------------------------------------------


class SwapTiming(TypedDict):
    """tasks.core.timing.Timing, flat on the swap's state (WaitForBoot reads `$.boot_poll_seconds`)."""

    start_delay_seconds: int
    boot_poll_seconds: int
    boot_max_polls: int
    group_poll_seconds: int
    group_max_polls: int
    lb_poll_seconds: int
    lb_max_polls: int


class SwapRequest(TypedDict):
    """The replacement execution's input (docs/replacement.md); from outside, so Validate checks every value."""

    asg_name: str
    instance_id: str
    reason: NotRequired[str]
    force: NotRequired[bool]
    timing: NotRequired[dict[str, int]]
    market: NotRequired[str]
    instance_type: NotRequired[str | None]
    launch: NotRequired[dict[str, str] | None]  # a rollout's target: launch_template_version or image_id
    rollout: NotRequired[str]  # the rollout that started this child (read by the CLI and the sweep, not a step)
    start_id: NotRequired[str]  # tasks.aws.executions.start_named's, one per start call


class ValidateInput(TypedDict):
    input: SwapRequest
    execution_name: str
    state_machine_arn: NotRequired[str]  # passed by the state machine, not read


class SwapState(SwapTiming):
    """Validate's result, at `$`: the facts every later step of the swap reads."""

    asg_name: str
    instance_id: str
    reason: str
    execution_name: str
    instance_type: str
    market: str  # the replacement's: the Market choice takes LaunchSpot or LaunchOnDemand
    target_instance_type: str
    subnet_id: str | None
    availability_zone: str
    platform_details: str  # spot and on-demand are priced for this OS
    launch_template_id: str | None
    launch_template_name: str | None
    launch_template_version: str
    image_id: str | None  # a rollout to an AMI
    override_types: Sequence[str] | None  # None: any compatible type (a list once through JSON)
    behind_load_balancer: bool
    desired_at_start: int
    instance_tags: dict[str, str]
    group_tags: dict[str, str]  # the AsgOptimiser:* policy tags


class Launched(TypedDict):
    """What the steps after a launch read of it, whatever its market (at `$.spot`)."""

    outcome: Literal["launched"]
    spot_instance_id: str
    spot_instance_type: str


class SpotLaunched(Launched):
    spot_price: float
    on_demand_price: float
    on_demand_price_source: str
    hourly_saving: float
    candidate_types: list[str]


class OnDemandLaunched(Launched):
    market: str  # "on-demand"


class NoCapacity(TypedDict):
    outcome: Literal["no-capacity"]
    asg_name: str
    instance_id: str
    availability_zone: str
    why: str
    cooled_pools: list[str]
    market: NotRequired[str]  # "on-demand": LaunchOnDemand's


class QuotaExceeded(TypedDict):
    outcome: Literal["quota-exceeded"]
    asg_name: str
    instance_id: str
    availability_zone: str
    why: str


class LaunchRefused(TypedDict):
    outcome: Literal["refused"]
    reason: str
    why: str
    asg_name: str
    instance_id: str


LaunchSpotResult = SpotLaunched | NoCapacity | QuotaExceeded | LaunchRefused
LaunchOnDemandResult = OnDemandLaunched | NoCapacity


class BootResult(TypedDict):
    ready: bool
    polls: int


class CheckSpotInput(SwapState):
    spot: Launched
    boot: NotRequired[BootResult]  # the previous poll's


class AttachResult(TypedDict):
    attached: str
    held: bool
    retired: bool  # AttachSpot retired the on-demand and gave the group back in its own section
    raised_max_to: int
    suspended: str


class AttachSpotInput(SwapState):
    spot: Launched


class RetireResult(TypedDict):
    done: bool
    polls: int
    lb_polls: int
    wait_seconds: int  # WaitForGroup's
    waiting_for: str
    restored: bool


class RetireInput(SwapState):
    spot: Launched
    attach: NotRequired[AttachResult]
    retire: NotRequired[RetireResult]  # the previous poll's


class StepError(TypedDict):
    """What a Catch records at its ResultPath."""

    Error: str
    Cause: str


class CleanupInput(SwapState):
    spot: NotRequired[Launched]  # absent when the launch itself failed (no other outcome reaches Cleanup)
    error: NotRequired[StepError]


class CleanupResult(TypedDict):
    terminated_spots: str
    kept_spots: str


# --- the interruption workflow (statemachines/spot_interruption.asl.json) -----------------------------------------


class InterruptionRequest(TypedDict):
    """The interruption execution's input (tasks.spot_events.start_interruption)."""

    asg_name: str
    instance_id: str  # the interrupted spot
    reason: str
    warned_at: str  # ISO time of the warning
    notice_seconds: NotRequired[int]
    start_id: NotRequired[str]


class RaiseCapacityInput(TypedDict):
    input: InterruptionRequest
    execution_name: str


class InterruptionState(TypedDict):
    asg_name: str
    instance_id: str
    execution_name: str
    drain_seconds: int
    deadline: float
    poll_seconds: int  # WaitForReplacement's


class RaiseCapacityResult(InterruptionState):
    """At `$`: the interruption's state for ReleaseSpot."""

    raised: bool
    raised_to: int
    why: str
    requested_at: NotRequired[float]


class ReleaseResult(TypedDict):
    done: bool
    polls: int
    why: str
    restored: bool


class ReleaseSpotInput(RaiseCapacityResult):
    release: NotRequired[ReleaseResult]  # the previous poll's


# --- shared by both ------------------------------------------------------------------------------------------------


class RestoreGroupInput(TypedDict):
    """RestoreGroup runs in both workflows: after a swap (its whole state) and after an interruption's failure
    (only the group and the execution)."""

    asg_name: str
    execution_name: str
    instance_id: NotRequired[str]  # the swap's claim to release
    attach: NotRequired[AttachResult]
    retire: NotRequired[RetireResult]
    release: NotRequired[ReleaseResult]


class RestoreResult(TypedDict):
    restored: bool
    max_size: int
    resumed: str


# --- the rollout workflow (statemachines/rollout.asl.json) ---------------------------------------------------------


class RolloutRequest(TypedDict):
    """The rollout execution's input (docs/rollouts.md); from outside, so Plan checks every value."""

    asg_name: str
    to: dict[str, str]  # {launch_template_version} or {image_id}
    batch: NotRequired[str]
    checkpoints: NotRequired[str]
    bake_seconds: NotRequired[int]
    alarms: NotRequired[list[str]]
    skip_matching: NotRequired[bool]
    rollback_on_failure: NotRequired[bool]
    failure_budget: NotRequired[int]
    timing: NotRequired[dict[str, int]]
    start_id: NotRequired[str]


class RolloutPlanInput(TypedDict):
    input: RolloutRequest
    execution_name: str
    execution_arn: NotRequired[str]  # passed, not read
    started: NotRequired[str]  # the execution's start time: the children's stamp


class ChildStart(TypedDict):
    """One child execution of the replacement workflow (RunBatch's and RunRollback's items)."""

    name: str
    input: SwapRequest


@final  # final, so the Gate's `"held" in event` tells it from HeldRollout (mypy narrows final TypedDicts)
class RolloutState(TypedDict):
    """Plan's result at `$`, which the Gate carries on: the batches, the current children and the gate settings."""

    markets: dict[str, str]
    covered: dict[str, str]
    asg_name: str
    execution_name: str
    target: dict[str, str]
    timing: dict[str, int]
    previous: dict[str, dict[str, str]]
    batches: list[list[str]]
    checkpoint_after: list[int]
    batch_index: int
    bake_seconds: int  # Bake's
    alarms: list[str]
    failure_budget: int
    rollback_on_failure: bool
    stamp: str
    moved: list[dict[str, Any]]
    kept: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    phase: str
    skipped: int
    outcome: Literal["nothing", "rolling"]
    why: str
    current: list[ChildStart]
    action: NotRequired[str]  # the Gate's decision (Route)
    results: NotRequired[list[dict[str, object]]]  # the batch's children, as RunBatch's Map gives them
    resumed: NotRequired[object]  # what `rollout resume` sent


class RolloutRefused(TypedDict):
    outcome: Literal["refused"]
    asg_name: str
    why: str


RolloutPlanResult = RolloutState | RolloutRefused


@final
class HeldRollout(TypedDict):
    """The Gate's input as the Resumed state, after a checkpoint."""

    held: RolloutState


class CheckpointInput(TypedDict):
    token: str
    execution_name: str
    asg_name: str
    why: NotRequired[str]


class CheckpointResult(TypedDict):
    waiting: str


class RolloutReleaseInput(TypedDict):
    asg_name: str
    execution_name: str


class RolloutReleaseResult(TypedDict):
    released: bool
