"""Rough edges a new user hit (issue 17, items 10-14), each pinned: the demo's one JSON object and its own
embedded AWS whatever AWS_ENDPOINT_URL says, errors that point the right way, counted nouns, what `show` and
`sweep` tell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from tasks.core.model import Instance
from tasks.core.plural import counted
from tasks.core.sweep import orphaned_spots, young_unowned_spots
from tasks.core.tags import EXECUTION, REPLACES
from tests.cli_helpers import cli

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.long
def test_demo_prints_exactly_one_json_object_and_uses_its_own_aws_whatever_aws_endpoint_url_says() -> None:
    """Items 10 and 11: Powertools metric lines do not reach stdout, `-o json demo` is `demo --json`, and an
    exported AWS_ENDPOINT_URL (as for `local serve`) is ignored with one line on stderr."""
    # As from a plain shell: nothing this process exported (Powertools' level among it) reaches the demo.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_", "POWERTOOLS_"))}
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # nothing listens there: a call sent to it would fail
    done = subprocess.run([sys.executable, "-c", "from asg_optimizer.cli import app; app()", "-o", "json", "demo"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    report = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert isinstance(report, dict) and done.returncode == (0 if report["ok"] else 1), done.stderr[-3000:]
    assert report["scans"] >= 1 and report["executions"]  # it ran on its own AWS: the endpoint was never called
    assert '"_aws"' not in done.stdout
    notes = [line for line in done.stderr.splitlines() if not line.startswith(("/", "  "))]  # Python warnings aside
    assert notes == ["note: AWS_ENDPOINT_URL is ignored: the demo runs on an embedded AWS of its own"]


def test_the_embedded_aws_ignores_and_restores_an_exported_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with EmbeddedAws() as aws:
        assert "AWS_ENDPOINT_URL" not in os.environ
        assert aws.client("stepfunctions").list_state_machines()["stateMachines"]
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"


def test_metrics_go_to_the_sink_not_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    from asg_optimizer.local import metrics_sink

    with EmbeddedAws():
        metrics = Metrics(namespace="AsgOptimizer", service="test")
        metrics.add_metric(name="NoSpotCapacity", unit=MetricUnit.Count, value=1)
        metrics.flush_metrics()
        assert metrics_sink.metric_values("NoSpotCapacity") == [({"service": "test"}, [1.0])]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("args", "line"), [
    (["--endpoint-url", "127.0.0.1:45680", "status"],
     "error: --endpoint-url '127.0.0.1:45680' is not a URL: give the scheme and host, e.g. http://127.0.0.1:45680"),
    (["--region", "us-eats-1", "status"], "error: --region 'us-eats-1' is not an AWS region: did you mean us-east-1?"),
    (["status", "--fast"], "error: No such option: --fast (Possible options: --asg, --sort) (asg-optimizer status)"),
    (["replace"], "error: Missing option '--asg'. (asg-optimizer replace)"),
    (["executions", "--limit", "zero"],
     "error: Invalid value for '--limit': Input should be a valid integer, unable to parse string as an integer (got "
     "'zero') (asg-optimizer executions)"),
])
def test_bad_input_is_one_line_naming_the_value_exit_2(args: list[str], line: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    result = cli(*args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", line + "\n")


def test_an_unreachable_endpoint_is_named_not_blamed_on_credentials(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    result = cli("--endpoint-url", "http://192.0.2.1:4566", "--region", "us-east-1", "status")  # TEST-NET-1
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot reach --endpoint-url http://192.0.2.1:4566: ")
    assert len(result.stderr.splitlines()) == 1 and "credentials" not in result.stderr


def test_counts_read_as_english() -> None:
    assert [counted(n, "group") for n in (0, 1, 2)] == ["0 groups", "1 group", "2 groups"]
    assert counted(1, "poll") == "1 poll" and counted(2, "policy", "policies") == "2 policies"


def _spot(age: int | None) -> Instance:
    launched = (NOW - timedelta(seconds=age)).isoformat() if age is not None else None
    return Instance("i-0aaaaaaaaaaaaaaaa", "running", "m5.large", "subnet-1", "us-east-1a", lifecycle="spot",
                    tags={REPLACES: "i-0bbbbbbbbbbbbbbbb", EXECUTION: "web-x"}, launch_time=launched)


def test_the_sweep_tells_of_a_young_unowned_spot_it_left() -> None:
    young, old = [_spot(40)], [_spot(4000)]
    assert orphaned_spots(young, {}, set(), NOW, 600) == []
    assert young_unowned_spots(young, {}, set(), NOW, 600) == [(
        "i-0aaaaaaaaaaaaaaaa", "spot for i-0bbbbbbbbbbbbbbbb by execution web-x, in no ASG, launched 40s ago: "
        "terminated once older than 600s if still in no ASG")]
    assert young_unowned_spots(old, {}, set(), NOW, 600) == []
    assert young_unowned_spots(young, {"i-0aaaaaaaaaaaaaaaa": "web"}, set(), NOW, 600) == []  # in a group: owned
    assert young_unowned_spots(young, {}, {"web-x"}, NOW, 600) == []  # its execution still runs
