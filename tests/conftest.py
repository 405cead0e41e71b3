"""Shared fixtures: a fresh embedded AWS per test (moto + ASL interpreter + our stack) and fleet builders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from asg_optimizer.local.clock import ManualClock
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import GroupSpec, Network, create_group, create_network

# Real loops at the shortest poll interval AWS gets (2 s); the embedded AWS's Wait states last WAIT_SCALE of
# that (0.2 s), so 2 s polls against a 0.3 s boot run CheckSpot at least twice. Tests that need an exact number
# of polls count answers instead (Ec2Model.boot_status_reads).
FAST = {"boot_poll_seconds": 2, "boot_max_polls": 10, "group_poll_seconds": 2, "group_max_polls": 5}
WAIT_SCALE = 0.1  # a Wait state of 600 s (a swap parked in StartDelay) still lasts a minute
MANUAL_WAIT_SCALE = 0.01  # on a manual clock nothing but the poll count matters
# Interruption notice in `market_aws`: EC2's own two minutes. A release must come from the replacement being in
# service, never from a deadline a loaded machine reaches first (the deadline path is tested on the pure decision).
SPOT_NOTICE = 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `long` (many seconds of real waits or a process of their own) run first, in collection order:
    xdist's workers then steal the short ones at the end, and no worker is left alone with a long one. The sort is
    stable and the same in every worker, as xdist requires."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(autouse=True)
def no_inherited_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist's workers export COLUMNS=80 (a pretend terminal), which the CLI honours; tests that are about
    widths set it themselves."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def market_aws() -> Iterator[EmbeddedAws]:
    """An embedded AWS where spot warnings come with a short notice and event-started swaps run FAST."""
    env = {"SPOT_NOTICE_SECONDS": str(SPOT_NOTICE), "SWAP_TIMING": json.dumps(FAST)}
    with EmbeddedAws(boot_delay_seconds=0.3, retry_scale=0.05, wait_scale=WAIT_SCALE, environment=env) as embedded:
        yield embedded


@pytest.fixture
def aws() -> Iterator[EmbeddedAws]:
    with EmbeddedAws(boot_delay_seconds=0.3, retry_scale=0.05, wait_scale=WAIT_SCALE) as embedded:
        # A fresh container: no metric left unflushed by an earlier test in this worker. (Imported here, once the
        # embedded AWS has set the metrics namespace that Powertools reads when the module makes its Metrics.)
        from tasks.aws.invocation import metrics

        metrics.clear_metrics()
        yield embedded


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def clocked_aws(clock: ManualClock) -> Iterator[EmbeddedAws]:
    """The embedded AWS on a manual clock: target health, draining and hook timeouts move only when a test
    advances it, and instances boot at once."""
    with EmbeddedAws(boot_delay_seconds=0, retry_scale=0.05, wait_scale=MANUAL_WAIT_SCALE, clock=clock) as embedded:
        yield embedded


@pytest.fixture
def network(aws: EmbeddedAws) -> Network:
    return create_network()


@pytest.fixture
def make_group(network: Network):  # type: ignore[no-untyped-def]
    def make(name: str = "web", desired: int = 2, max_size: int = 4, **kwargs: Any) -> dict[str, Any]:
        return create_group(network, GroupSpec(name=name, desired=desired, max_size=max_size, **kwargs))

    return make
