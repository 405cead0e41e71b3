"""Policy tags: defaults, every format, every kind of malformed value, the on-demand floor and the window."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.core.policy import Policy, PolicyError, Window, parse_policy
from tasks.core.tags import (
    ALLOWED_TYPES,
    DENIED_TYPES,
    GRACE_PERIOD,
    HOLD_PREFIX,
    MAX_PARALLEL,
    MIN_ON_DEMAND,
    MIN_ON_DEMAND_PERCENT,
    OPT_IN,
    ORIGINAL_MAX_SIZE,
    POLICY_TAGS,
    WINDOW,
)


def parse(tags: dict[str, str], grace: int = 300) -> Policy:
    return parse_policy("web", {OPT_IN: "true", **tags}, default_grace_period=grace)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 31, hour, minute, tzinfo=UTC)


def test_defaults_take_the_grace_period_from_the_group() -> None:
    assert parse({}, grace=120) == Policy(min_on_demand=0, min_on_demand_percent=0, max_parallel=1, grace_period=120,
                                          allowed_types=(), denied_types=(), window=None)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({MIN_ON_DEMAND: "2"}, Policy(min_on_demand=2, grace_period=300)),
        ({MIN_ON_DEMAND: " 0 "}, Policy(grace_period=300)),
        ({MIN_ON_DEMAND_PERCENT: "100"}, Policy(min_on_demand_percent=100, grace_period=300)),
        ({MAX_PARALLEL: "3"}, Policy(max_parallel=3, grace_period=300)),
        ({GRACE_PERIOD: "0"}, Policy(grace_period=0)),
        ({ALLOWED_TYPES: "m5.*, c5.large"}, Policy(allowed_types=("m5.*", "c5.large"), grace_period=300)),
        ({DENIED_TYPES: "t?.*,[a-c]6g.*"}, Policy(denied_types=("t?.*", "[a-c]6g.*"), grace_period=300)),
        ({WINDOW: "22-06"}, Policy(window=Window(22, 6), grace_period=300)),
        ({WINDOW: "0-24"}, Policy(window=Window(0, 24), grace_period=300)),
        ({HOLD_PREFIX + "web-i-0123456789abcdef0-20260101T000000": "held", ORIGINAL_MAX_SIZE: "4"},
         Policy(grace_period=300)),
    ],
)
def test_valid_tags(tags: dict[str, str], expected: Policy) -> None:
    assert parse(tags) == expected


@pytest.mark.parametrize(
    ("tag", "value", "problem"),
    [
        (MIN_ON_DEMAND, "-1", "expected a whole number 0 or more"),
        (MIN_ON_DEMAND, "two", "expected a whole number 0 or more"),
        (MIN_ON_DEMAND, "1.5", "expected a whole number 0 or more"),
        (MIN_ON_DEMAND, "", "expected a whole number 0 or more"),
        (MIN_ON_DEMAND_PERCENT, "101", "expected a whole number from 0 to 100"),
        (MIN_ON_DEMAND_PERCENT, "50%", "expected a whole number from 0 to 100"),
        (MAX_PARALLEL, "0", "expected a whole number 1 or more"),
        (MAX_PARALLEL, "1e3", "expected a whole number 1 or more"),
        (GRACE_PERIOD, "5m", "expected a whole number 0 or more"),
        (GRACE_PERIOD, "٣", "expected a whole number 0 or more"),  # a digit, but not 0-9
        (ALLOWED_TYPES, "", "expected comma-separated instance type globs such as 'm5.*,c5.large'"),
        (ALLOWED_TYPES, "m5.*,,c5.large", "expected comma-separated instance type globs such as 'm5.*,c5.large'"),
        (DENIED_TYPES, "m5 large", "'m5 large' is not an instance type glob (lowercase, digits, . * ? [ ] -)"),
        (DENIED_TYPES, "M5.*", "'M5.*' is not an instance type glob (lowercase, digits, . * ? [ ] -)"),
        (WINDOW, "22:00-06:00", "expected UTC hours START-END such as '22-06'"),
        (WINDOW, "always", "expected UTC hours START-END such as '22-06'"),
        (WINDOW, "24-06", "hours must be 0-23 (end may be 24)"),
        (WINDOW, "22-25", "hours must be 0-23 (end may be 24)"),
        (WINDOW, "6-6", "start and end are the same hour; omit the tag to allow any hour"),
        (WINDOW, "0-0", "start and end are the same hour; omit the tag to allow any hour"),
    ],
)
def test_malformed_tags_name_asg_tag_and_value(tag: str, value: str, problem: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse({tag: value})
    assert str(raised.value) == f"ASG web: tag {tag}={value!r} is malformed: {problem}"
    assert (raised.value.asg_name, raised.value.tag, raised.value.value) == ("web", tag, value)


def test_a_misspelt_policy_tag_is_refused_not_ignored() -> None:
    with pytest.raises(PolicyError) as raised:
        parse({"AsgOptimiser:MaxParalel": "3"})
    assert str(raised.value) == (
        "ASG web: tag AsgOptimiser:MaxParalel='3' is malformed: unknown tag; known: " + ", ".join(POLICY_TAGS)
    )


@pytest.mark.parametrize(
    ("minimum", "percent", "desired", "floor"),
    [
        (0, 0, 10, 0),
        (2, 0, 10, 2),
        (0, 25, 5, 2),  # 1.25 rounds up
        (0, 20, 5, 1),  # exact
        (0, 1, 10, 1),  # 0.1 rounds up: any percent above 0 keeps at least one
        (1, 50, 3, 2),  # percent wins
        (3, 50, 3, 3),  # count wins
        (0, 100, 7, 7),
        (2, 50, 0, 2),
    ],
)
def test_on_demand_floor_is_the_larger_rounded_up(minimum: int, percent: int, desired: int, floor: int) -> None:
    assert Policy(min_on_demand=minimum, min_on_demand_percent=percent).on_demand_floor(desired) == floor


@pytest.mark.parametrize(
    ("window", "when", "inside"),
    [
        (Window(22, 6), at(21, 59), False),
        (Window(22, 6), at(22, 0), True),
        (Window(22, 6), at(23, 59), True),
        (Window(22, 6), at(0, 0), True),
        (Window(22, 6), at(5, 59), True),
        (Window(22, 6), at(6, 0), False),
        (Window(9, 17), at(8, 59), False),
        (Window(9, 17), at(9, 0), True),
        (Window(9, 17), at(17, 0), False),
        (Window(0, 24), at(23, 59), True),
        (Window(23, 0), at(23, 30), True),
        (Window(23, 0), at(0, 0), False),
    ],
)
def test_window_wraps_at_midnight(window: Window, when: datetime, inside: bool) -> None:
    assert window.contains(when) is inside
    assert Policy(window=window).in_window(when) is inside


def test_no_window_means_any_hour() -> None:
    assert all(Policy().in_window(at(h)) for h in range(24))


@pytest.mark.parametrize(
    ("allowed", "denied", "instance_type", "ok"),
    [
        ((), (), "m5.large", True),
        (("m5.*",), (), "m5.large", True),
        (("m5.*",), (), "c5.large", False),
        (("m5.*", "c5.*"), ("c5.large",), "c5.large", False),
        ((), ("t?.*",), "t3.micro", False),
        ((), ("t?.*",), "m5.large", True),
    ],
)
def test_type_globs_deny_wins(allowed: tuple[str, ...], denied: tuple[str, ...], instance_type: str, ok: bool) -> None:
    assert Policy(allowed_types=allowed, denied_types=denied).allows_type(instance_type) is ok


@given(
    minimum=st.integers(0, 10**6), percent=st.integers(0, 100), parallel=st.integers(1, 10**6),
    grace=st.integers(0, 10**6), start=st.integers(0, 23), end=st.integers(1, 24),
    padding=st.sampled_from(["", " ", "  "]),
)
def test_rendered_values_parse_back(minimum: int, percent: int, parallel: int, grace: int, start: int, end: int,
                                    padding: str) -> None:
    tags = {MIN_ON_DEMAND: f"{padding}{minimum}", MIN_ON_DEMAND_PERCENT: str(percent), MAX_PARALLEL: str(parallel),
            GRACE_PERIOD: f"{grace}{padding}"}
    if start != end:
        tags[WINDOW] = f"{start:02d}-{end}"
    policy = parse(tags)
    assert (policy.min_on_demand, policy.min_on_demand_percent, policy.max_parallel, policy.grace_period) == (
        minimum, percent, parallel, grace)
    if start != end:
        hours_open = sum(policy.in_window(at(h)) for h in range(24))
        assert hours_open == (end - start) % 24 or (end - start == 24 and hours_open == 24)


@given(tag=st.sampled_from(POLICY_TAGS), value=st.text(max_size=12))
def test_any_value_parses_or_fails_with_one_clear_message(tag: str, value: str) -> None:
    try:
        parse({tag: value})
    except PolicyError as error:
        assert str(error).startswith(f"ASG web: tag {tag}={value!r} is malformed: ")
        assert "\n" not in str(error).replace(repr(value), "")


@pytest.mark.parametrize(("tags", "problem"), [
    ({DENIED_TYPES: "*"}, "it denies every instance type, so no spot could ever be launched"),
    ({DENIED_TYPES: "*.*"}, "it denies every instance type, so no spot could ever be launched"),
    ({DENIED_TYPES: "m5.*,c5.large", ALLOWED_TYPES: "m5.large,c5.large"},
     "it denies every instance type allowed by AsgOptimiser:AllowedTypes='m5.large,c5.large', so no spot could "
     "ever be launched"),
])
def test_a_policy_denying_every_type_is_malformed_naming_tag_and_value(tags: dict[str, str], problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse(tags)
    assert str(caught.value) == f"ASG web: tag {DENIED_TYPES}={tags[DENIED_TYPES]!r} is malformed: {problem}"


SAMPLE_TYPES = ("m5.large", "m5.xlarge", "c5.large", "c6g.medium", "t3.micro", "t4g.nano", "r6i.2xlarge",
                "x2iedn.32xlarge", "u-6tb1.112xlarge", "mac2-m2pro.metal", "p5.48xlarge", "i4i.metal")
GLOB = st.text(alphabet="mct56.*?lar[]gex-", min_size=1, max_size=8)


@given(allowed=st.lists(GLOB, max_size=2), denied=st.lists(GLOB, min_size=1, max_size=2))
def test_a_policy_flagged_as_denying_everything_allows_no_type(allowed: list[str], denied: list[str]) -> None:
    tags = {DENIED_TYPES: ",".join(denied), **({ALLOWED_TYPES: ",".join(allowed)} if allowed else {})}
    try:
        parse(tags)
    except PolicyError as error:
        if "denies every instance type" in str(error):
            policy = Policy(allowed_types=tuple(allowed), denied_types=tuple(denied))
            assert not any(policy.allows_type(t) for t in SAMPLE_TYPES)
