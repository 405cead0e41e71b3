"""The web-fleet decisions of the pure core, without mocks: who serves behind load balancers, when a doomed spot
must start draining, launch-hook and weighted-group refusals, which template and types a mixed group's spot gets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.errors import SpotNotHealthy
from tasks.core.interruption import release_decision
from tasks.core.lifecycle_hooks import launch_hook_refusal
from tasks.core.load_balancing import label, not_serving, release_by, serving_ids
from tasks.core.mixed_instances import override_types, template_for, weighted_refusal
from tasks.core.model import Group, Member, Override, TemplateRef
from tasks.core.policy import PolicyError, parse_policy
from tasks.core.readiness import retire_decision

TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/0123456789abcdef"
OD, SPOT, OTHER = "i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000c"


def web(*members: tuple[str, str], desired: int = 2) -> Group:
    return Group("web", desired=desired, min_size=0, max_size=4, target_group_arns=(TG,),
                 members=tuple(Member(i, state) for i, state in members))


def test_release_by_drains_a_30_s_delay_before_the_two_minute_notice_ends() -> None:
    assert release_by(1000.0, 120, 30, 20) == 1090.0


def test_release_by_caps_a_300_s_delay_so_the_replacement_keeps_a_quarter_of_the_notice() -> None:
    assert release_by(1000.0, 120, 300, 20) == 1030.0


def test_release_by_without_load_balancers_keeps_the_margin() -> None:
    assert release_by(1000.0, 120, 0, 20) == 1100.0


@given(notice=st.integers(4, 600), drain=st.integers(0, 3600), margin=st.integers(0, 120))
def test_release_is_never_after_the_notice_ends_nor_before_a_quarter_of_it(notice: int, drain: int,
                                                                          margin: int) -> None:
    deadline = release_by(0.0, notice, drain, margin)
    assert notice // 4 <= deadline <= notice
    if 0 < drain <= notice - notice // 4:
        assert deadline == notice - drain  # uncapped: exactly the delay before the reclaim


def test_a_member_serves_only_when_healthy_in_every_load_balancer() -> None:
    group = Group("web", 2, 0, 4, members=(Member(OD, "InService"), Member(SPOT, "InService")),
                  target_group_arns=(TG,), load_balancer_names=("web",))
    health = {TG: {OD: "healthy", SPOT: "healthy"}, "elb:web": {OD: "InService", SPOT: "OutOfService"}}
    assert serving_ids(group, health) == {OD}
    assert not_serving(health, SPOT) == f"{SPOT} is OutOfService in classic ELB web"
    assert not_serving({TG: {}}, SPOT) == f"{SPOT} is not registered in target group web-tg"
    assert label(TG) == "target group web-tg"


def test_retire_waits_while_the_spot_is_initial_in_a_target_group() -> None:
    group = web((OD, "InService"), (OTHER, "InService"), (SPOT, "InService"), desired=3)
    health = {TG: {OD: "healthy", OTHER: "healthy", SPOT: "initial"}}
    waiting = retire_decision(group, on_demand_id=OD, spot_id=SPOT, polls=1, max_polls=5, health=health,
                              lb_polls=1, lb_max_polls=10)
    assert (waiting.retire, waiting.waiting_on_load_balancer) == (False, True)
    assert waiting.why_waiting == f"spot {SPOT} is initial in target group web-tg"
    ready = retire_decision(group, on_demand_id=OD, spot_id=SPOT, polls=1, max_polls=5,
                            health={TG: {OD: "healthy", OTHER: "healthy", SPOT: "healthy"}})
    assert ready.retire


def test_retire_gives_up_after_lb_max_polls_with_the_state_named() -> None:
    group = web((OD, "InService"), (SPOT, "InService"))
    with pytest.raises(SpotNotHealthy, match=f"after 4 polls: {SPOT} is unhealthy in target group web-tg"):
        retire_decision(group, on_demand_id=OD, spot_id=SPOT, polls=1, max_polls=5,
                        health={TG: {OD: "healthy", SPOT: "unhealthy"}}, lb_polls=4, lb_max_polls=4)


def test_retire_counts_serving_members_not_in_service_ones() -> None:
    group = web((OD, "InService"), (OTHER, "InService"), (SPOT, "InService"), desired=3)
    health = {TG: {OD: "healthy", OTHER: "initial", SPOT: "healthy"}}  # another member is not healthy yet
    waiting = retire_decision(group, on_demand_id=OD, spot_id=SPOT, polls=1, max_polls=5, health=health)
    assert not waiting.retire
    assert waiting.why_waiting == "ASG web has 2 serving behind its load balancers for desired 3"


def test_interruption_release_waits_for_the_replacement_to_be_healthy() -> None:
    group = web((OD, "InService"), (SPOT, "InService"), (OTHER, "InService"), desired=3)
    pending = release_decision(group, spot_id=SPOT, now=10, deadline=20,
                               health={TG: {OD: "healthy", SPOT: "healthy", OTHER: "initial"}})
    assert not pending.terminate_spot and pending.why == "2 healthy behind the load balancers for desired 3"
    late = release_decision(group, spot_id=SPOT, now=20, deadline=20,
                            health={TG: {OD: "healthy", SPOT: "healthy", OTHER: "initial"}})
    assert late.terminate_spot and late.why.startswith("deadline")
    healthy = release_decision(group, spot_id=SPOT, now=10, deadline=20,
                               health={TG: {OD: "healthy", SPOT: "healthy", OTHER: "healthy"}})
    assert healthy.terminate_spot and healthy.why == "replacement healthy behind the load balancers (3/3)"


def test_launch_hook_refusal_names_the_hook_unless_bypassed() -> None:
    hooks = [("ship-logs", "autoscaling:EC2_INSTANCE_TERMINATING"), ("bootstrap", "autoscaling:EC2_INSTANCE_LAUNCHING")]
    assert launch_hook_refusal("web", hooks, bypass=False) == (
        "ASG web has launch lifecycle hook 'bootstrap', which attached spots skip; "
        "tag AsgOptimiser:LaunchHooks=bypass to swap anyway")
    assert launch_hook_refusal("web", hooks, bypass=True) is None
    assert launch_hook_refusal("web", hooks[:1], bypass=False) is None  # termination hooks keep running


def test_launch_hooks_tag_takes_only_bypass() -> None:
    assert parse_policy("web", {"AsgOptimiser:LaunchHooks": "bypass"}, default_grace_period=0).bypass_launch_hooks
    with pytest.raises(PolicyError, match="tag AsgOptimiser:LaunchHooks='skip' is malformed: the only value is"):
        parse_policy("web", {"AsgOptimiser:LaunchHooks": "skip"}, default_grace_period=0)


X86 = TemplateRef("lt-x86", "api-x86", "$Latest")
ARM = TemplateRef("lt-arm", "api-arm64", "1")


def mixed(*overrides: Override, capacity_type: str = "units") -> Group:
    return Group("api", 2, 0, 4, launch_template_id="lt-x86", launch_template_name="api-x86",
                 launch_template_version="$Latest", overrides=overrides, desired_capacity_type=capacity_type,
                 members=(Member(OD, "InService", instance_type="m6g.large", launch_template=ARM),
                          Member(OTHER, "InService", instance_type="m5.large")))


def test_a_mixed_group_spot_uses_the_members_own_template_and_its_override_types() -> None:
    group = mixed(Override("m5.large"), Override("c5.large"), Override("m6g.large", ARM), Override("c6g.large", ARM))
    assert template_for(group, group.member(OD)) == ARM
    assert template_for(group, group.member(OTHER)) == X86
    assert override_types(group, ARM) == ("m6g.large", "c6g.large")
    assert override_types(group, X86) == ("m5.large", "c5.large")
    assert override_types(Group("plain", 1, 0, 2), X86) is None


def test_weighted_groups_are_refused_and_weight_one_is_not_weighted() -> None:
    assert weighted_refusal(mixed(Override("m5.large", weighted_capacity="1"))) is None
    assert weighted_refusal(mixed(Override("m5.large", weighted_capacity="2"), Override("m5.xlarge"))) == (
        "ASG api has weighted overrides (m5.large=2): weighted groups are not swapped, since a spot of another "
        "weight would change its capacity")
    assert weighted_refusal(mixed(Override("m5.large"), capacity_type="vcpu")) == (
        "ASG api counts capacity in vcpu (DesiredCapacityType): weighted groups are not swapped")
