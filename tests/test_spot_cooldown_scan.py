"""The scanner respects pool cooldowns: an on-demand whose own pool (type x AZ) is cooling waits; others proceed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks.core.model import Group, Instance, Member
from tasks.core.prices import Pool
from tasks.core.selection import REPLACE, SKIP, select
from tasks.core.tags import OPT_IN

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def fleet() -> tuple[Group, dict[str, Instance]]:
    """Two on-demand m5.large, one in each zone; MaxParallel 2 so both may go."""
    placed = {"i-0000000000000000a": "us-east-1a", "i-0000000000000000b": "us-east-1b"}
    members = tuple(Member(i, "InService", instance_type="m5.large", availability_zone=z) for i, z in placed.items())
    launched = (NOW - timedelta(hours=1)).isoformat()
    instances = {i: Instance(i, "running", "m5.large", "subnet-1", z, launch_time=launched) for i, z in placed.items()}
    group = Group("web", 2, 0, 4, tags={OPT_IN: "true", "AsgOptimiser:MaxParallel": "2"}, members=members,
                  launch_template_id="lt-1", health_check_grace_period=0)
    return group, instances


def test_instance_in_a_cooling_pool_waits_and_the_rest_proceed() -> None:
    group, instances = fleet()
    plan = select([group], instances, set(), NOW, cooling_pools=frozenset({Pool("m5.large", "us-east-1a")}))
    verdicts = {v.instance_id: (v.action, v.why) for v in plan.verdicts}
    assert verdicts["i-0000000000000000a"] == (
        SKIP, "spot pool m5.large in us-east-1a is cooling down (no capacity or interrupted recently)")
    assert verdicts["i-0000000000000000b"][0] == REPLACE


def test_no_cooldowns_selects_both() -> None:
    group, instances = fleet()
    assert [v.action for v in select([group], instances, set(), NOW).verdicts] == [REPLACE, REPLACE]
