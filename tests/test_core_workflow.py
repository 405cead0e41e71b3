"""The workflow's pure decisions, with plain values: names, eligibility, readiness, retire, cleanup (group holds:
test_coordination.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.cleanup import plan_cleanup
from tasks.core.eligibility import check_claimed, check_reason, check_swappable
from tasks.core.errors import (
    GroupNotReady,
    InstanceNotEligible,
    InvalidInput,
    NotOptedIn,
    OnDemandGone,
    SpotNotReady,
    SwapInFlight,
)
from tasks.core.model import Group, Instance, Member
from tasks.core.naming import MAX_NAME, client_token, execution_name, instance_of
from tasks.core.readiness import READY, WAITING, retire_decision, spot_readiness
from tasks.core.timing import (
    EXECUTION_TIMEOUT_SECONDS,
    MARGIN_SECONDS,
    POLL_TASK_SECONDS,
    STEP_TASK_SECONDS,
    STEP_TASKS,
    Timing,
    parse_timing,
    worst_case_seconds,
)

AT = datetime(2026, 11, 26, 20, 1, 2, tzinfo=UTC)
OD = "i-0123456789abcdef0"
SPOT = "i-0fedcba9876543210"


def group(**kwargs: object) -> Group:
    base: dict[str, object] = {
        "name": "web", "desired": 2, "min_size": 0, "max_size": 4, "tags": {"AsgOptimiser": "true"},
        "members": (Member(OD, "InService"), Member("i-0aaaaaaaaaaaaaaaa", "InService")),
        "launch_template_id": "lt-1",
    }
    base.update(kwargs)
    return Group(**base)  # type: ignore[arg-type]


def instance(**kwargs: object) -> Instance:
    base: dict[str, object] = {"instance_id": OD, "state": "running", "instance_type": "m5.large",
                               "subnet_id": "subnet-1", "availability_zone": "us-east-1a"}
    base.update(kwargs)
    return Instance(**base)  # type: ignore[arg-type]


# --- names -------------------------------------------------------------------------------------------------------
def test_execution_name_format() -> None:
    assert execution_name("web", OD, AT) == f"web-{OD}-20261126T200102"


def test_execution_name_sanitizes_and_cuts_the_group_part_only() -> None:
    name = execution_name("team a/b:c " + "x" * 100, OD, AT)
    assert len(name) == MAX_NAME
    assert name.startswith("team-a-b-c-x")
    assert name.endswith(f"-{OD}-20261126T200102")
    assert instance_of(name) == OD


@given(st.text(min_size=1, max_size=255), st.sampled_from([OD, "i-12345678"]))
def test_any_group_name_gives_a_legal_parseable_name(asg: str, instance_id: str) -> None:
    name = execution_name(asg, instance_id, AT)
    assert 1 <= len(name) <= MAX_NAME
    assert not any(c in name for c in ' <>{}[]?*"#%\\^|~`$&,;:/')
    assert instance_of(name) == instance_id


@given(st.text(min_size=1, max_size=255), st.sampled_from([OD, "i-12345678"]))
def test_execution_names_use_only_the_characters_cloudwatch_logs_accepts(asg: str, instance_id: str) -> None:
    """Step Functions: a name with any character outside 0-9A-Za-z-_ cannot be logged to CloudWatch Logs."""
    name = execution_name(asg, instance_id, AT)
    assert re.fullmatch(r"[0-9A-Za-z_-]+", name), name
    assert execution_name("web.prod api-été_1", OD, AT) == f"web-prod-api--t-_1-{OD}-20261126T200102"


def test_foreign_names_parse_to_none() -> None:
    assert instance_of("manual-run-1") is None


def test_client_token_is_stable_and_short() -> None:
    assert client_token("a") == client_token("a") != client_token("b")
    assert len(client_token("x" * 80)) <= 64


# --- timing and input --------------------------------------------------------------------------------------------
def test_timing_defaults_and_overrides() -> None:
    assert parse_timing(None) == Timing()
    assert parse_timing({"boot_poll_seconds": 2}).boot_poll_seconds == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"boot_pol_seconds": 1}, "unknown timing key 'boot_pol_seconds'"),
        ({"boot_max_polls": 0}, "timing.boot_max_polls must be an integer from 1 to 200, got 0"),
        ({"group_poll_seconds": "5"}, "timing.group_poll_seconds must be an integer from 2 to 600, got '5'"),
        ({"boot_poll_seconds": True}, "timing.boot_poll_seconds must be an integer from 2 to 600, got True"),
    ],
)
def test_bad_timing_is_refused_naming_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        parse_timing(raw)


@pytest.mark.parametrize("key", ["boot_poll_seconds", "group_poll_seconds", "lb_poll_seconds"])
@pytest.mark.parametrize("seconds", [0, 1])
def test_a_poll_interval_under_two_seconds_is_refused_as_describe_calls_are_rate_limited(key: str,
                                                                                        seconds: int) -> None:
    """EC2's Describe* calls are eventually consistent and rate-limited per account: polling faster than every 2 s
    sees nothing newer and spends the budget every other swap shares (issue 13's decision)."""
    with pytest.raises(InvalidInput, match=f"^timing.{key} must be an integer from 2 to 600, got {seconds}$"):
        parse_timing({key: seconds})


@given(st.integers(0, 3600), st.integers(2, 600), st.integers(1, 200), st.integers(2, 600), st.integers(1, 200))
def test_timing_whose_waits_exceed_the_execution_timeout_is_refused(
        delay: int, boot_poll: int, boot_polls: int, group_poll: int, group_polls: int) -> None:
    """Step Functions: an execution-level timeout (TimeoutSeconds) runs no Catch, so Cleanup and Restore would
    never run. Every accepted timing's worst case fits inside the timeout with the margin; any other is refused."""
    raw = {"start_delay_seconds": delay, "boot_poll_seconds": boot_poll, "boot_max_polls": boot_polls,
           "group_poll_seconds": group_poll, "group_max_polls": group_polls}
    asl = json.loads((Path(__file__).parent.parent / "statemachines/replace_instance.asl.json").read_text())
    assert asl["TimeoutSeconds"] == EXECUTION_TIMEOUT_SECONDS
    budget = EXECUTION_TIMEOUT_SECONDS - MARGIN_SECONDS
    waits = delay + boot_polls * (boot_poll + POLL_TASK_SECONDS) + group_polls * (group_poll + POLL_TASK_SECONDS)
    if waits + STEP_TASKS * STEP_TASK_SECONDS <= budget:
        assert worst_case_seconds(parse_timing(raw)) <= budget
    else:
        with pytest.raises(InvalidInput, match=r"^timing takes up to [\d,]+ s .* execution timeout of 7,200 s$"):
            parse_timing(raw)
    assert worst_case_seconds(parse_timing({"start_delay_seconds": 3600})) <= budget  # the launch event's longest


def test_reason_must_be_known() -> None:
    assert check_reason("event") == "event"
    expected = ("reason must be one of scheduled, event, manual, interruption, rollout, rebalance, commitment, got "
                "'oops'")
    with pytest.raises(InvalidInput, match=re.escape(expected)):
        check_reason("oops")


# --- eligibility -------------------------------------------------------------------------------------------------
def test_eligible_instance_passes() -> None:
    check_swappable(group(), instance(), OD)


@pytest.mark.parametrize(
    ("grp", "inst", "error", "message"),
    [
        (group(tags={}), instance(), NotOptedIn, "ASG web is not opted in: tag AsgOptimiser is missing"),
        (group(tags={"AsgOptimiser": "yes"}), instance(), NotOptedIn, "tag AsgOptimiser is 'yes', expected 'true'"),
        (group(members=()), instance(), InstanceNotEligible, f"instance {OD} is not a member of ASG web"),
        (group(members=(Member(OD, "Pending"),)), instance(), InstanceNotEligible, "is Pending, not InService"),
        (group(members=(Member(OD, "InService", protected=True),)), instance(), InstanceNotEligible,
         "is protected from scale-in"),
        (group(), None, InstanceNotEligible, f"instance {OD} is gone, not running"),
        (group(), instance(lifecycle="spot"), InstanceNotEligible, f"instance {OD} is spot, not on-demand"),
        (group(launch_template_id=None), instance(), InstanceNotEligible, "has no launch template"),
    ],
)
def test_ineligible_cases(grp: Group, inst: Instance | None, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        check_swappable(grp, inst, OD)


def test_a_claim_held_by_another_execution_refuses_naming_it() -> None:
    check_claimed(OD, None)
    with pytest.raises(SwapInFlight, match=f"instance {OD} is already being replaced by execution c"):
        check_claimed(OD, "c")


# --- readiness and retire ----------------------------------------------------------------------------------------
def test_spot_readiness() -> None:
    ready = {"instance_id": SPOT, "polls": 1, "max_polls": 3}
    assert spot_readiness(state="running", instance_check="ok", system_check="ok", **ready) == READY
    assert spot_readiness(state="pending", instance_check=None, system_check=None, **ready) == WAITING
    with pytest.raises(SpotNotReady, match=f"spot {SPOT} failed its status checks"):
        spot_readiness(state="running", instance_check="impaired", system_check="ok", **ready)
    with pytest.raises(SpotNotReady, match=f"spot {SPOT} is terminated before passing"):
        spot_readiness(state="terminated", instance_check=None, system_check=None, **ready)
    with pytest.raises(SpotNotReady, match="not ready after 3 polls"):
        spot_readiness(instance_id=SPOT, state="running", instance_check="initializing", system_check="ok",
                       polls=3, max_polls=3)


def _with_spot(state: str = "InService", od_state: str | None = "InService", desired: int = 3) -> Group:
    members = [Member(SPOT, state), Member("i-0aaaaaaaaaaaaaaaa", "InService")]
    if od_state:
        members.append(Member(OD, od_state))
    return group(desired=desired, members=tuple(members))


def test_retire_only_when_spot_serves() -> None:
    args = {"on_demand_id": OD, "spot_id": SPOT, "polls": 1, "max_polls": 2}
    assert retire_decision(_with_spot(), **args).retire
    waiting = retire_decision(_with_spot(state="Pending"), **args)
    assert not waiting.retire and not waiting.done and "not yet InService" in waiting.why_waiting
    with pytest.raises(GroupNotReady, match="gave up after 2 polls"):
        retire_decision(_with_spot(state="Pending"), **{**args, "polls": 2})


def test_retire_waits_while_group_is_short_of_desired() -> None:
    decision = retire_decision(_with_spot(desired=4), on_demand_id=OD, spot_id=SPOT, polls=1, max_polls=3)
    assert not decision.retire and "3 InService for desired 4" in decision.why_waiting


def test_retire_is_idempotent_after_a_crash() -> None:
    decision = retire_decision(_with_spot(od_state="Terminating"), on_demand_id=OD, spot_id=SPOT, polls=1,
                               max_polls=3)
    assert decision.done and not decision.retire


def test_retire_refuses_when_on_demand_left_before_spot_serves() -> None:
    with pytest.raises(OnDemandGone, match=f"on-demand {OD} is gone in ASG web before the spot serves"):
        retire_decision(_with_spot(state="Pending", od_state=None), on_demand_id=OD, spot_id=SPOT, polls=1,
                        max_polls=3)


# --- cleanup -----------------------------------------------------------------------------------------------------
def test_cleanup_plans() -> None:
    outside = plan_cleanup(spot_running=True, spot_member_state=None, on_demand_member=True)
    assert outside.terminate_spot and not outside.remove_spot
    attached = plan_cleanup(spot_running=True, spot_member_state="InService", on_demand_member=True)
    assert attached.remove_spot and not attached.keep_spot
    serving = plan_cleanup(spot_running=True, spot_member_state="InService", on_demand_member=False)
    assert serving.keep_spot and not serving.terminate_spot and not serving.remove_spot
    nothing = plan_cleanup(spot_running=False, spot_member_state=None, on_demand_member=True)
    assert not (nothing.terminate_spot or nothing.remove_spot or nothing.keep_spot)


def test_validate_refusals_end_succeeded_as_refused_and_other_errors_fail() -> None:
    """A refusal must not page anyone (the failed-executions alarm counts ExecutionsFailed): the refusal errors
    route to a Pass that ends the execution with outcome `refused`; anything else Validate raises still fails."""
    import json
    from pathlib import Path

    from tasks.core import errors
    from tasks.core.errors import REFUSALS, SwapRefused

    states = json.loads(Path("statemachines/replace_instance.asl.json").read_text())["States"]
    refusals, others = states["Validate"]["Catch"]
    assert (refusals["ErrorEquals"], refusals["Next"]) == (list(REFUSALS), "ReadRefusal")
    assert (others["ErrorEquals"], states[others["Next"]]["Type"]) == (["States.ALL"], "Fail")
    assert states["ReadRefusal"]["Next"] == "Refused"
    assert states["Refused"]["Type"] == "Pass" and states["Refused"]["End"] is True
    assert states["Refused"]["Parameters"]["outcome"] == "refused"
    declared = {name for name, value in vars(errors).items()
                if isinstance(value, type) and issubclass(value, SwapRefused) and value is not SwapRefused}
    assert declared == set(REFUSALS)  # every refusal Validate can raise is routed as one
