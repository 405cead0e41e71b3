"""The Pulumi program under Pulumi's mocks (preview=False): what `pulumi up` would create, derived from the stack
description generically, so new functions, schedules and rules are covered without touching these tests."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.seam import resolve_handler
from infra import iam
from infra.blueprint import StackError
from infra.config import ConfigError, Settings, parse_settings
from infra.dashboard import CUSTOM_METRICS
from infra.environment import UnknownEnvironment
from infra.names import Scope
from stack.description import (
    COMMITMENT_SETTINGS,
    COMMITMENTS,
    DEFAULT_PREFIX,
    PAUSE_ALARMS,
    PAUSE_FAILURE_BUDGET,
    PAUSE_SETTINGS,
    REPLACE,
    SAVINGS_PLAN_RESERVE_PER_HOUR,
    STACK,
    STATE_MACHINE_ARN_ENVIRONMENT,
    EventRule,
    Function,
    Schedule,
    Stack,
)
from tasks.core.naming import instance_of
from tests.pulumi_harness import ACCOUNT, REGION, Deployment, Registered, deploy_with_mocks

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = str(ROOT / "__main__.py")
SCOPE = Scope(partition="aws", region=REGION, account=ACCOUNT, prefix=DEFAULT_PREFIX)
FUNCTION = "aws:lambda/function:Function"
MACHINE = "aws:sfn/stateMachine:StateMachine"
ROLE, ROLE_POLICY = "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy"
RULE, TARGET, PERMISSION = ("aws:cloudwatch/eventRule:EventRule", "aws:cloudwatch/eventTarget:EventTarget",
                            "aws:lambda/permission:Permission")
LOG_GROUP, ALARM = "aws:cloudwatch/logGroup:LogGroup", "aws:cloudwatch/metricAlarm:MetricAlarm"
QUEUE, QUEUE_POLICY = "aws:sqs/queue:Queue", "aws:sqs/queuePolicy:QueuePolicy"
DASHBOARD, TOPIC, SUBSCRIPTION = ("aws:cloudwatch/dashboard:Dashboard", "aws:sns/topic:Topic",
                                  "aws:sns/topicSubscription:TopicSubscription")
COMPONENT, TABLE = "asg-optimizer:index:SpotOptimizer", "aws:dynamodb/table:Table"
# A rule that starts the state machine directly, next to the stack's own (which target functions).
DIRECT = EventRule("direct-swap", REPLACE, {"source": ["asg-optimizer.test"]}, "start a swap from an event")


@pytest.fixture(scope="module")
def program() -> Deployment:
    """`pulumi up` of __main__.py with no stack config: the defaults."""
    return deploy_with_mocks(program=PROGRAM)


@pytest.fixture(scope="module")
def variant_stack() -> Stack:
    return replace(STACK, rules=(*STACK.rules, DIRECT))


@pytest.fixture(scope="module")
def variant(variant_stack: Stack) -> Deployment:
    """Non-default settings, an alarm email, and a rule targeting the state machine."""
    settings = parse_settings({"architecture": "x86_64", "runtime": "python3.13", "memorySize": "1024",
                               "logRetentionDays": "90", "alarmEmail": "ops@example.com", "prefix": "spotty",
                               "schedules": {s.key: "rate(2 hours)" for s in STACK.schedules},
                               "environment": {"TEAM": "infra"}}, variant_stack)

    def build() -> Any:
        from infra.component import SpotOptimizer

        return SpotOptimizer("asg-optimizer", settings, stack=variant_stack)

    return deploy_with_mocks(build)


def _targets(stack: Stack) -> list[Schedule | EventRule]:
    return [*stack.schedules, *stack.rules]


def _targeted_machines(stack: Stack) -> set[str]:
    """Machines a rule starts directly; a key naming both a function and a machine targets the function."""
    functions = {f.key for f in stack.functions}
    return {t.function for t in _targets(stack) if t.function not in functions}


def _function_targets(stack: Stack) -> list[Schedule | EventRule]:
    return [t for t in _targets(stack) if t.function in {f.key for f in stack.functions}]


def _counts(deployment: Deployment) -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in deployment.resources:
        counts[resource.typ] = counts.get(resource.typ, 0) + 1
    return counts


def _expected_counts(stack: Stack, *, email: bool) -> dict[str, int]:
    functions, machines, targets = len(stack.functions), len(stack.state_machines), len(_targets(stack))
    roles = functions + machines + len(_targeted_machines(stack))
    expected = {
        COMPONENT: 1, FUNCTION: functions, MACHINE: machines, LOG_GROUP: functions + machines,
        ROLE: roles, ROLE_POLICY: roles, RULE: targets, TARGET: targets,
        PERMISSION: len(_function_targets(stack)), QUEUE: 1, QUEUE_POLICY: 1 if targets else 0,
        DASHBOARD: 1, ALARM: machines + 1, TOPIC: int(email), SUBSCRIPTION: int(email), TABLE: len(stack.tables),
    }
    return {typ: n for typ, n in expected.items() if n}


def _by_name(deployment: Deployment, typ: str) -> dict[str, Registered]:
    return {r.inputs["name"]: r for r in deployment.of_type(typ)}


def _function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


# --- inventory ------------------------------------------------------------------------------------------------


def test_inventory_follows_the_stack_description(program: Deployment) -> None:
    assert _counts(program) == _expected_counts(STACK, email=False)
    assert set(_by_name(program, FUNCTION)) == {f.name() for f in STACK.functions}
    assert set(_by_name(program, MACHINE)) == {m.name() for m in STACK.state_machines}
    assert {r.inputs["name"] for r in program.of_type(RULE)} == {f"{DEFAULT_PREFIX}-{t.key}" for t in _targets(STACK)}


def test_inventory_with_a_state_machine_target_and_an_alarm_email(variant: Deployment, variant_stack: Stack) -> None:
    assert _counts(variant) == _expected_counts(variant_stack, email=True)


def test_one_component(program: Deployment) -> None:
    assert [r.name for r in program.of_type(COMPONENT)] == ["asg-optimizer"]


@pytest.mark.parametrize("deployment", ["program", "variant"])
def test_logical_and_physical_names_are_unique(deployment: str, request: pytest.FixtureRequest) -> None:
    """The engine refuses two resources with one URN (type + logical name); AWS refuses two roles, functions,
    rules... with one name. Keys may repeat across kinds (a function and a state machine `spot-interruption`)."""
    resources: list[Registered] = request.getfixturevalue(deployment).resources
    urns = [(r.typ, r.name) for r in resources]
    assert len(urns) == len(set(urns)), sorted(u for u in urns if urns.count(u) > 1)
    physical = [(r.typ, r.inputs["name"]) for r in resources if "name" in r.inputs and r.typ != ROLE_POLICY]
    assert len(physical) == len(set(physical)), sorted(p for p in physical if physical.count(p) > 1)


# --- functions ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", STACK.functions, ids=lambda f: f.key)
def test_function_settings(program: Deployment, function: Function) -> None:
    deployed = _by_name(program, FUNCTION)[function.name()].inputs
    assert deployed["handler"] == function.handler
    assert callable(resolve_handler(deployed["handler"]))
    assert (deployed["runtime"], deployed["architectures"]) == ("python3.12", ["arm64"])
    assert deployed["layers"] == [
        f"arn:aws:lambda:{REGION}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:27"]
    assert (deployed["timeout"], deployed["memorySize"]) == (function.timeout, function.memory)
    assert deployed["tracingConfig"] == {"mode": "Active"}
    assert deployed["role"] == f"arn:aws:iam::{ACCOUNT}:role/{function.name()}"  # its own role
    variables = deployed["environment"]["variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "asg-optimizer"
    assert variables["POWERTOOLS_LOG_LEVEL"] == "INFO"
    for name in function.environment:  # every declared variable has a value (see test_environment_values);
        assert variables[name] or name == PAUSE_ALARMS  # no pause alarms configured is the empty list
    if PAUSE_FAILURE_BUDGET in function.environment:
        assert variables[PAUSE_FAILURE_BUDGET] == "3"
    targeted = function.key in {t.function for t in _targets(STACK)}
    assert ("deadLetterConfig" in deployed) is targeted
    if targeted:
        queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:asg-optimizer-dead-letters"
        assert deployed["deadLetterConfig"] == {"targetArn": queue}
    logs = _by_name(program, LOG_GROUP)[f"/aws/lambda/{function.name()}"].inputs
    assert logs["retentionInDays"] == 30


def test_environment_values_are_the_deployed_names(program: Deployment) -> None:
    machines = {name: f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK.state_machine(key).name()}"
                for name, key in STATE_MACHINE_ARN_ENVIRONMENT.items()}
    tables = {t.environment: t.name() for t in STACK.tables}
    deployed_machines = {r.inputs["name"] for r in program.of_type(MACHINE)}
    deployed_tables = {r.inputs["name"] for r in program.of_type(TABLE)}
    for function in STACK.functions:
        variables = _by_name(program, FUNCTION)[function.name()].inputs["environment"]["variables"]
        for name in function.environment:
            if name in machines:
                assert variables[name] == machines[name]
                assert variables[name].rsplit(":", 1)[1] in deployed_machines
            elif name in PAUSE_SETTINGS + COMMITMENT_SETTINGS:  # stack settings: defaults here (test_pulumi_config)
                assert variables[name] == {PAUSE_ALARMS: "", PAUSE_FAILURE_BUDGET: "3", COMMITMENTS: "use",
                                           SAVINGS_PLAN_RESERVE_PER_HOUR: "0"}[name]
            else:
                assert variables[name] == tables[name]
                assert variables[name] in deployed_tables


def test_tables(program: Deployment) -> None:
    for table in STACK.tables:
        deployed = program.one(TABLE, f"{table.key}-table").inputs
        assert (deployed["name"], deployed["billingMode"], deployed["hashKey"]) == (
            table.name(), "PAY_PER_REQUEST", table.partition_key)
        assert deployed["attributes"] == [{"name": table.partition_key, "type": "S"}]
        assert deployed["ttl"] == {"attributeName": table.ttl_attribute, "enabled": True}


def test_every_handler_string_resolves_to_a_callable_in_tasks() -> None:
    for function in STACK.functions:
        assert function.handler.startswith("tasks.")
        assert callable(resolve_handler(function.handler)), function.handler


def test_code_package_is_the_tasks_tree_without_caches(program: Deployment) -> None:
    packages = {frozenset((name, asset.path) for name, asset in r.inputs["code"].assets.items())
                for r in program.of_type(FUNCTION)}
    assert len(packages) == 1  # one package for every function
    (package,) = packages
    assert all(Path(path) == ROOT / name for name, path in package)
    names = {name for name, _ in package}
    on_disk = {f"tasks/{p.relative_to(ROOT / 'tasks').as_posix()}" for p in (ROOT / "tasks").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert names == on_disk
    for function in STACK.functions:
        module = function.handler.rpartition(".")[0]
        assert f"{module.replace('.', '/')}.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_settings_reach_every_function(variant: Deployment, variant_stack: Stack) -> None:
    for function in variant_stack.functions:
        deployed = _by_name(variant, FUNCTION)[function.name("spotty")].inputs
        assert (deployed["runtime"], deployed["architectures"], deployed["memorySize"]) == (
            "python3.13", ["x86_64"], 1024)
        assert deployed["layers"] == [
            f"arn:aws:lambda:{REGION}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:27"]
        assert deployed["environment"]["variables"]["TEAM"] == "infra"
    assert {r.inputs["retentionInDays"] for r in variant.of_type(LOG_GROUP)} == {90}


# --- state machines -------------------------------------------------------------------------------------------


def _task_resources(node: Any) -> set[str]:
    """Every function or state machine a Task reaches: its Resource, or the function or state machine an
    integration (`lambda:invoke.waitForTaskToken`, `states:startExecution.sync:2`) names in its Parameters."""
    if isinstance(node, dict):
        found = set()
        if node.get("Type") == "Task":
            parameters = node.get("Parameters") or {}
            found = {parameters.get("FunctionName") or parameters.get("StateMachineArn") or node["Resource"]}
        return found.union(*(_task_resources(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_task_resources(v) for v in node))
    return set()


@pytest.mark.parametrize("machine", STACK.state_machines, ids=lambda m: m.key)
def test_state_machine_definition_references_exactly_the_deployed_functions(program: Deployment, machine) -> None:  # type: ignore[no-untyped-def]
    deployed = _by_name(program, MACHINE)[machine.name()].inputs
    assert "${" not in deployed["definition"]
    definition = json.loads(deployed["definition"])
    function_arns = {f.inputs["name"]: _function_arn(f.inputs["name"]) for f in program.of_type(FUNCTION)}
    expected = {function_arns[STACK.function(key).name()] for key in machine.substitutions.values()}
    expected |= {f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK.state_machine(key).name()}"
                 for key in machine.machines.values()}
    assert _task_resources(definition) == expected
    assert definition["TimeoutSeconds"] > 0  # an execution timeout
    assert deployed["type"] == "STANDARD"
    assert deployed["tracingConfiguration"] == {"enabled": True}
    assert deployed["loggingConfiguration"] == {
        "level": "ALL", "includeExecutionData": True,
        "logDestination": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/vendedlogs/states/{machine.name()}:*"}
    assert deployed["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{machine.name()}-states"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is installed by make test")
def test_asl_validator_accepts_every_rendered_definition(program: Deployment) -> None:
    validator = ROOT / "node_modules" / ".bin" / "asl-validator"
    assert validator.exists(), "run `make test` (npm ci installs asl-validator)"
    for machine in program.of_type(MACHINE):
        result = subprocess.run([str(validator), "--json-definition", machine.inputs["definition"]],
                                capture_output=True, text=True, check=False, cwd=ROOT)
        assert result.returncode == 0, result.stdout + result.stderr


# --- IAM as deployed ------------------------------------------------------------------------------------------


def _inline_policy(deployment: Deployment, role_logical_name: str) -> dict[str, Any]:
    return json.loads(deployment.one(ROLE_POLICY, role_logical_name).inputs["policy"])


def test_each_role_carries_the_planned_least_privilege_policy(program: Deployment) -> None:
    ctx = iam.Context(SCOPE, STACK)
    targeted = {t.function for t in _targets(STACK)}
    for function in STACK.functions:
        role = program.one(ROLE, f"{function.key}-function-role").inputs
        assert role["name"] == function.name()
        assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert _inline_policy(program, f"{function.key}-function-role") == iam.function_policy(
            ctx, function, dead_letter=function.key in targeted)
    for machine in STACK.state_machines:
        role = program.one(ROLE, f"{machine.key}-states-role").inputs
        assert role["name"] == f"{machine.name()}-states"
        trust = json.loads(role["assumeRolePolicy"])
        assert trust["Statement"][0]["Condition"]["ArnLike"] == {"aws:SourceArn": ctx.machine_arn(machine.key)}
        assert _inline_policy(program, f"{machine.key}-states-role") == iam.state_machine_policy(ctx, machine)
    assert not any("AWS" in json.dumps(r.inputs.get("managedPolicyArns", [])) for r in program.of_type(ROLE))


def test_a_rule_targeting_the_state_machine_uses_a_role_that_may_only_start_it(variant: Deployment) -> None:
    target = variant.one(TARGET, DIRECT.key).inputs
    machine_name = STACK.state_machine(REPLACE).name("spotty")
    assert target["arn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine_name}"
    assert target["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{machine_name}-events"
    policy = _inline_policy(variant, f"{REPLACE}-events-role")
    assert [(s["Action"], s["Resource"]) for s in policy["Statement"]] == [(["states:StartExecution"], target["arn"])]
    assert not [p for p in variant.of_type(PERMISSION) if p.name == f"{DIRECT.key}-invoke"]


# --- schedules, rules, dead letters ---------------------------------------------------------------------------


def test_schedules_rules_and_their_targets(program: Deployment) -> None:
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:asg-optimizer-dead-letters"
    for schedule in STACK.schedules:
        assert program.one(RULE, schedule.key).inputs["scheduleExpression"] == schedule.expression
    for rule in STACK.rules:
        assert json.loads(program.one(RULE, rule.key).inputs["eventPattern"]) == rule.pattern
    for target in _targets(STACK):
        deployed = program.one(TARGET, target.key).inputs
        assert deployed["rule"] == f"asg-optimizer-{target.key}"
        assert deployed["deadLetterConfig"] == {"arn": queue_arn}
        assert deployed["retryPolicy"] == {"maximumEventAgeInSeconds": 3600, "maximumRetryAttempts": 4}
    for target in _function_targets(STACK):
        function_name = STACK.function(target.function).name()
        assert program.one(TARGET, target.key).inputs["arn"] == _function_arn(function_name)
        permission = program.one(PERMISSION, f"{target.key}-invoke").inputs
        assert (permission["principal"], permission["action"], permission["function"], permission["sourceArn"]) == (
            "events.amazonaws.com", "lambda:InvokeFunction", function_name,
            f"arn:aws:events:{REGION}:{ACCOUNT}:rule/asg-optimizer-{target.key}")
    queue = program.one(QUEUE, "dead-letters").inputs
    assert (queue["sqsManagedSseEnabled"], queue["messageRetentionSeconds"]) == (True, 14 * 86400)
    if _targets(STACK):
        policy = json.loads(program.one(QUEUE_POLICY, "dead-letters").inputs["policy"])
        assert policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"] == sorted(
            f"arn:aws:events:{REGION}:{ACCOUNT}:rule/asg-optimizer-{t.key}" for t in _targets(STACK))


def test_schedule_override_from_config(variant: Deployment) -> None:
    assert {variant.one(RULE, s.key).inputs["scheduleExpression"] for s in STACK.schedules} <= {"rate(2 hours)"}


# --- observability --------------------------------------------------------------------------------------------


def test_dashboard_and_alarms(program: Deployment) -> None:
    machine_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK.state_machine(REPLACE).name()}"
    body = json.loads(program.one(DASHBOARD, "dashboard").inputs["dashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert titles[:4] == ["Swaps", "Swaps skipped", "Spot share of the opted-in fleet (%)",
                          "Estimated savings added per ASG ($/h)"]
    assert [t for t in titles if t.startswith("Executions of ")] == [
        f"Executions of {m.key}" for m in STACK.state_machines if m.key != REPLACE]
    text = json.dumps(body)
    assert machine_arn in text
    assert all(f'"{f.name()}"' in text for f in STACK.functions)
    alarm = program.one(ALARM, f"{REPLACE}-failed").inputs
    metrics = {q["metric"]["metricName"]: q["metric"]["dimensions"] for q in alarm["metricQueries"] if "metric" in q}
    assert metrics == {"ExecutionsFailed": {"StateMachineArn": machine_arn},
                       "ExecutionsTimedOut": {"StateMachineArn": machine_arn}}
    assert "alarmActions" not in alarm or alarm["alarmActions"] == []


def test_every_metric_a_handler_emits_is_on_the_dashboard_and_every_drawn_metric_is_emitted(
        program: Deployment) -> None:
    emitted = set()
    for path in (ROOT / "tasks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_metric":
                name = next((k.value for k in node.keywords if k.arg == "name"), None)
                assert isinstance(name, ast.Constant), f"{path}: add_metric with a non-literal name"
                emitted.add(name.value)
    body = program.one(DASHBOARD, "dashboard").inputs["dashboardBody"]
    missing = sorted(m for m in emitted if f'MetricName=\\"{m}\\"' not in body)
    assert not missing, f"metrics emitted but not on the dashboard (infra/dashboard.py): {missing}"
    assert set(CUSTOM_METRICS) == emitted, f"drawn but never emitted: {sorted(set(CUSTOM_METRICS) - emitted)}"


def test_alarm_email_subscribes_to_both_alarms(variant: Deployment) -> None:
    topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:spotty-alarms"
    subscription = variant.one(SUBSCRIPTION, "alarm-email").inputs
    assert (subscription["protocol"], subscription["endpoint"], subscription["topic"]) == (
        "email", "ops@example.com", topic_arn)
    assert all(a.inputs["alarmActions"] == [topic_arn] for a in variant.of_type(ALARM))


# --- outputs --------------------------------------------------------------------------------------------------


def test_outputs(program: Deployment) -> None:
    machine = STACK.state_machine(REPLACE).name()
    arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}"
    outputs = program.outputs
    assert outputs["stateMachineArn"] == arn
    assert outputs["stateMachineName"] == machine
    assert outputs["executionsConsoleUrl"] == (
        f"https://{REGION}.console.aws.amazon.com/states/home?region={REGION}#/statemachines/view/{arn}")
    assert outputs["scannerFunctionName"] == "asg-optimizer-scanner"
    assert outputs["functionNames"] == {f.key: f.name() for f in STACK.functions}
    assert outputs["deadLetterQueueUrl"].endswith(f"/{ACCOUNT}/asg-optimizer-dead-letters")
    assert outputs["dashboardUrl"].endswith("#dashboards/dashboard/asg-optimizer")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_manual_trigger_command_starts_a_well_named_swap(program: Deployment, tmp_path: Path) -> None:
    """Paste the command into a shell whose `aws` only prints its arguments: the input is the workflow's input
    and the name parses back to the instance (so Validate treats it like a scanner-started swap)."""
    script = ('aws() { printf "%s\\n" "$@" > "$ARGS"; }\n'
              + program.outputs["manualTriggerCommand"].replace("my-asg", "web").replace(
                  "i-0123456789abcdef0", "i-0abc12345def67890"))
    subprocess.run(["bash", "-c", script], check=True, env={"ARGS": str(tmp_path / "args"), "PATH": "/usr/bin:/bin"})
    args = (tmp_path / "args").read_text().splitlines()
    assert args[:4] == ["stepfunctions", "start-execution", "--region", REGION]
    options = dict(zip(args[4::2], args[5::2], strict=True))
    assert options["--state-machine-arn"] == program.outputs["stateMachineArn"]
    assert json.loads(options["--input"]) == {"asg_name": "web", "instance_id": "i-0abc12345def67890",
                                              "reason": "manual"}
    assert instance_of(options["--name"]) == "i-0abc12345def67890"


# --- bad input stops the program before anything is registered -------------------------------------------------


def test_bad_config_fails_with_one_line_and_registers_nothing() -> None:
    record = Deployment()
    with pytest.raises(ConfigError) as error:
        deploy_with_mocks(program=PROGRAM, config={"asg-optimizer:memorySize": "64"}, into=record)
    assert str(error.value) == "asg-optimizer:memorySize: must be from 128 to 10240 (MB), got '64'"
    assert record.resources == []


@pytest.mark.parametrize(("stack", "error", "message"), [
    (replace(STACK, schedules=(Schedule("tick", "nope", "rate(1 hour)", "x"),)), StackError,
     "schedule 'tick' targets 'nope', which is neither a function nor a state machine of the stack"),
    (replace(STACK, functions=tuple(replace(f, environment=("MYSTERY",)) if f.key == "validate" else f
                                    for f in STACK.functions)), UnknownEnvironment,
     "function 'validate' needs environment variable(s) MYSTERY, which infra/environment.py does not know how to "
     "set"),
    (replace(STACK, functions=(*STACK.functions, Function("extra", "tasks.validate.handler", "x"))), iam.MissingPolicy,
     "function 'extra' (tasks.validate.handler) has no IAM policy: add POLICIES['extra'] in infra/iam.py listing "
     "the AWS calls its handler makes"),
    (replace(STACK, rules=(*STACK.rules, EventRule(STACK.schedules[0].key, STACK.functions[0].key, {}, "x"))),
     StackError,
     f"resource names clash: rule {STACK.schedules[0].key} and rule {STACK.schedules[0].key} are both named "
     f"'asg-optimizer-{STACK.schedules[0].key}'"),
], ids=["unknown-target", "unknown-environment", "missing-policy", "clashing-names"])
def test_bad_stack_description_registers_nothing(stack: Stack, error: type[Exception], message: str) -> None:
    record = Deployment()
    settings = Settings(schedules={s.key: s.expression for s in stack.schedules})

    def build() -> Any:
        from infra.component import SpotOptimizer

        return SpotOptimizer("asg-optimizer", settings, stack=stack)

    with pytest.raises(error) as raised:
        deploy_with_mocks(build, into=record)
    assert str(raised.value) == message
    assert record.resources == []


# --- the embedded AWS and the Pulumi program deploy the same stack --------------------------------------------


def test_embedded_aws_and_pulumi_create_the_same_functions_and_state_machines(
        program: Deployment, aws: EmbeddedAws) -> None:
    functions = {f["FunctionName"] for page in aws.client("lambda").get_paginator("list_functions").paginate()
                 for f in page["Functions"]}
    machines = {m["name"] for page in aws.client("stepfunctions").get_paginator("list_state_machines").paginate()
                for m in page["stateMachines"]}
    assert functions == set(_by_name(program, FUNCTION))
    assert machines == set(_by_name(program, MACHINE))
    assert functions  # not two empty sets
