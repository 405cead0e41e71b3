"""The one ASL renderer, asl-validator on every state machine file, and the guard on moto's Lambda seam."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from moto.awslambda.models import LambdaFunction

from asg_optimizer.local import seam
from asg_optimizer.local.embedded import EmbeddedAws
from stack.description import STACK, STATEMACHINES
from stack.render import RenderError, placeholders, render, render_state_machine

ROOT = Path(__file__).resolve().parent.parent
ASL_FILES = sorted(STATEMACHINES.glob("*.asl.json"))


def fake_arns() -> dict[str, str]:
    return {f.key: f"arn:aws:lambda:us-east-1:123456789012:function:{f.name()}" for f in STACK.functions}


def fake_machine_arns() -> dict[str, str]:
    return {m.key: f"arn:aws:states:us-east-1:123456789012:stateMachine:{m.name()}" for m in STACK.state_machines}


def test_every_state_machine_file_is_in_the_stack() -> None:
    assert {m.path for m in STACK.state_machines} == set(ASL_FILES)


@pytest.mark.parametrize("machine", STACK.state_machines, ids=lambda m: m.key)
def test_rendered_asl_has_no_placeholder_left(machine) -> None:  # type: ignore[no-untyped-def]
    machines = fake_machine_arns()
    rendered = render_state_machine(machine, fake_arns(), machines)
    assert "${" not in rendered
    tasks = [s for s in json.loads(rendered)["States"].values() if s["Type"] == "Task"]
    # a function as the Resource, or through the Lambda integration (`lambda:invoke.waitForTaskToken`)
    resources = {s["Parameters"]["FunctionName"] if s["Resource"].startswith("arn:aws:states:::lambda:")
                 else s["Resource"] for s in tasks}
    assert resources == {fake_arns()[key] for key in machine.substitutions.values()}
    assert placeholders(machine.path.read_text()) == set(machine.substitutions) | set(machine.machines)
    children = {t["Parameters"]["StateMachineArn"] for s in json.loads(rendered)["States"].values()
                if s["Type"] == "Map" for t in s["ItemProcessor"]["States"].values() if t["Type"] == "Task"}
    assert children == {machines[key] for key in machine.machines.values()}


def test_render_leaves_jsonpath_dollars_alone() -> None:
    template = '{"Payload.$": "$", "Resource": "${Fn}", "x.$": "$$.Execution.Name"}'
    assert json.loads(render(template, {"Fn": "arn:1"})) == {
        "Payload.$": "$", "Resource": "arn:1", "x.$": "$$.Execution.Name"
    }


def test_render_is_strict_both_ways() -> None:
    with pytest.raises(RenderError, match="no value for placeholder\\(s\\) Fn"):
        render('{"a": "${Fn}"}', {})
    with pytest.raises(RenderError, match="value\\(s\\) for unknown placeholder\\(s\\) Other"):
        render('{"a": "${Fn}"}', {"Fn": "x", "Other": "y"})


@pytest.mark.skipif(shutil.which("npx") is None, reason="node is installed by make test")
@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_asl_validator_accepts_every_file(path: Path) -> None:
    validator = ROOT / "node_modules" / ".bin" / "asl-validator"
    assert validator.exists(), "run `make test` (npm ci installs asl-validator)"
    for args in (["--json-path", str(path)],
                 ["--json-definition", render_state_machine(_machine_for(path), fake_arns(), fake_machine_arns())]):
        result = subprocess.run([str(validator), *args], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def _machine_for(path: Path):  # type: ignore[no-untyped-def]
    return next(m for m in STACK.state_machines if m.path == path)


def test_moto_seam_still_has_the_shape_we_replace() -> None:
    seam.check_seam()  # fails loudly after a moto upgrade that changes _invoke_lambda or invoke


def test_seam_guard_fails_loudly_when_moto_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    def changed(self, event, context=None):  # type: ignore[no-untyped-def]
        raise AssertionError

    monkeypatch.setattr(seam, "_original", changed)
    with pytest.raises(seam.SeamChanged, match=r"now takes \['self', 'event', 'context'\]"):
        seam.check_seam()


def test_deployed_function_runs_its_real_handler_in_process(aws: EmbeddedAws) -> None:
    assert LambdaFunction._invoke_lambda is seam._invoke_in_process
    response = aws.client("lambda").invoke(
        FunctionName="asg-optimizer-validate",
        Payload=json.dumps({"input": {"asg_name": "ghost", "instance_id": "i-0123456789abcdef0"},
                            "execution_name": "x", "state_machine_arn": "arn"}),
    )
    payload = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Handled"
    assert payload["errorType"] == "GroupNotFound"
    assert payload["errorMessage"] == "ASG ghost does not exist"


@pytest.mark.parametrize("function", STACK.functions, ids=lambda f: f.key)
def test_every_handler_string_resolves(function) -> None:  # type: ignore[no-untyped-def]
    assert callable(seam.resolve_handler(function.handler))


def test_an_embedded_aws_that_fails_to_start_leaves_no_mock_or_patch_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    from asg_optimizer.local import cloudwatch_model
    from asg_optimizer.local.embedded import EmbeddedAws

    def broken() -> None:
        raise RuntimeError("model failed to install")

    with monkeypatch.context() as patched:
        patched.setattr(cloudwatch_model, "install", broken)
        with pytest.raises(RuntimeError, match="model failed to install"), EmbeddedAws(boot_delay_seconds=0):
            pass
    for _ in range(2):  # each fresh one starts from an empty account and deploys the stack (its IAM roles included)
        with EmbeddedAws(boot_delay_seconds=0) as aws:
            assert sorted(r["RoleName"] for r in aws.client("iam").list_roles()["Roles"]) == [
                "asg-optimizer-lambda", "asg-optimizer-states"]


def test_a_stopped_embedded_aws_never_runs_a_handler_in_the_next_one() -> None:
    """A stopped execution's thread that wakes after its embedded AWS stopped holds the old function object; the
    next embedded AWS deploys a function of the same name. Running the handler would act on the next one's
    state (a test saw another test's Validate refuse in its group): the old object is refused instead."""
    from moto.awslambda.models import lambda_backends

    def validate_function(aws: EmbeddedAws) -> LambdaFunction:
        name = next(f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]
                    if f["Handler"] == "tasks.validate.handler")
        return lambda_backends["123456789012"][aws.region].get_function(name)

    with EmbeddedAws(boot_delay_seconds=0) as first:
        old = validate_function(first)
    seen: list[str] = []
    with EmbeddedAws(boot_delay_seconds=0) as second:
        seam.observers.append(lambda name, *_: seen.append(name))
        try:
            payload, errored, _ = old._invoke_lambda(json.dumps({"input": {}, "execution_name": "late"}))
            assert validate_function(second) is not old
        finally:
            seam.observers.pop()
    assert errored and json.loads(payload)["errorType"] == "Lambda.ServiceException"
    assert "belongs to an embedded AWS that has stopped" in json.loads(payload)["errorMessage"]
    assert seen == []  # no handler ran


def test_uninstall_waits_for_the_handlers_still_running() -> None:
    flight = seam._InFlight()
    with flight.one():
        assert flight.drain(timeout=0.01) is False  # one still runs: the wait gives up only after its bound
    assert flight.drain(timeout=0.0) is True
