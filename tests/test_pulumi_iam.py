"""Least-privilege IAM: every function has a policy, the policy matches the AWS calls its handler's code makes
(both ways), every statement is scoped as issue #4 demands, and parliament finds nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string
from parliament.statement import get_privilege_info

from infra import iam
from infra.config import ConfigError, parse_settings
from infra.names import Scope
from stack.description import REPLACE, STACK, STATE_MACHINE_ARN_ENVIRONMENT, Function
from tasks.aws.clients import PRICING_REGION
from tests.handler_calls import handler_calls, iam_action

SCOPE = Scope(partition="aws", region="eu-west-1", account="123456789012", prefix="asg-optimizer")
KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CTX = iam.Context(SCOPE, STACK, instance_role_pattern="asg-instance-*", kms_key_arns=(KMS_KEY,))
FUNCTIONS = [f for f in STACK.functions]
DESTRUCTIVE_GROUP_ACTIONS = {
    "autoscaling:AttachInstances", "autoscaling:DetachInstances", "autoscaling:UpdateAutoScalingGroup",
    "autoscaling:SuspendProcesses", "autoscaling:ResumeProcesses", "autoscaling:SetInstanceProtection",
    "autoscaling:TerminateInstanceInAutoScalingGroup", "autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags",
    "autoscaling:SetDesiredCapacity",
}
MACHINE_ARNS = {CTX.machine_arn(m.key) for m in STACK.state_machines}
TABLE_ARNS = {f"arn:aws:dynamodb:eu-west-1:123456789012:table/{t.name()}" for t in STACK.tables}
DESTRUCTIVE_EC2_ACTIONS = {"ec2:TerminateInstances", "ec2:StopInstances", "ec2:RebootInstances"}
LAUNCH_ACTIONS = {"ec2:RunInstances", "ec2:CreateFleet"}


def _policy(function: Function, *, dead_letter: bool = True) -> dict[str, Any]:
    return iam.function_policy(CTX, function, dead_letter=dead_letter)


def _all_policies() -> list[tuple[str, dict[str, Any]]]:
    policies = [(f"function {f.key}", _policy(f)) for f in FUNCTIONS if f.key in iam.POLICIES]
    for machine in STACK.state_machines:
        policies += [(f"state machine {machine.key}", iam.state_machine_policy(CTX, machine)),
                     (f"events role of {machine.key}", iam.events_policy(CTX, machine))]
    return policies


def _actions(statement: dict[str, Any]) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else list(statement["Action"])


def _resources(statement: dict[str, Any]) -> list[str]:
    return [statement["Resource"]] if isinstance(statement["Resource"], str) else list(statement["Resource"])


def _allows(policy: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if s["Effect"] == "Allow" and action in _actions(s)]


# --- every function has a policy, and policy and code agree -------------------------------------------------


def test_every_function_in_the_stack_has_a_policy_entry() -> None:
    missing = [f"{f.key} ({f.handler})" for f in STACK.functions if f.key not in iam.POLICIES]
    assert not missing, f"add POLICIES entries in infra/iam.py for: {', '.join(missing)}"


def test_no_policy_entry_for_a_function_the_stack_does_not_have() -> None:
    assert set(iam.POLICIES) <= {f.key for f in STACK.functions}


def test_a_function_without_policy_fails_the_deployment_by_name() -> None:
    with pytest.raises(iam.MissingPolicy) as error:
        iam.function_policy(CTX, Function("rogue", "tasks.rogue.handler", "x"))
    assert str(error.value) == ("function 'rogue' (tasks.rogue.handler) has no IAM policy: add POLICIES['rogue'] in "
                                "infra/iam.py listing the AWS calls its handler makes")


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.key)
def test_policy_allows_every_call_the_handler_code_makes_and_nothing_more(function: Function) -> None:
    calls = handler_calls(function.handler)
    assert calls.visited, f"{function.handler}: handler not found in tasks/"
    assert not calls.problems, calls.problems
    assert function.key in iam.POLICIES, f"{function.key} has no policy; its code calls {sorted(calls.actions)}"
    policy = _policy(function)
    granted = iam.actions_of(policy)
    assert not calls.actions - granted, f"{function.key}: code calls {sorted(calls.actions - granted)}, not allowed"
    implied = {a for action in calls.actions for a in iam.IMPLIED_BY.get(action, ())}
    unused = granted - calls.actions - implied - iam.RUNTIME_ACTIONS
    assert not unused, f"{function.key}: policy grants {sorted(unused)}, which its code never calls"


def test_call_finder_follows_imports_and_variables(tmp_path: Path) -> None:
    package = tmp_path / "tasks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text(
        "from tasks.aws.clients import client\n\n"
        "def unused():\n    client('ec2').terminate_instances(InstanceIds=[])\n\n"
        "def pages():\n    return client('autoscaling').get_paginator('describe_auto_scaling_groups')\n")
    (package / "handler.py").write_text(
        "from tasks.aws.clients import client\nfrom tasks.helper import pages\n\n"
        "def handler(event, context):\n"
        "    sfn = client('stepfunctions')\n    sfn.start_execution(stateMachineArn='x')\n"
        "    client('ec2').get_waiter('instance_running')\n    return pages()\n")
    calls = handler_calls("tasks.handler.handler", root=tmp_path)
    assert not calls.problems
    assert calls.actions == {"states:StartExecution", "autoscaling:DescribeAutoScalingGroups",
                             "ec2:DescribeInstances"}  # not TerminateInstances: nothing reaches unused()


def test_call_finder_reports_calls_it_cannot_read(tmp_path: Path) -> None:
    package = tmp_path / "tasks"
    package.mkdir()
    (package / "handler.py").write_text(
        "import boto3\nfrom tasks.aws.clients import client\n\n"
        "def handler(event, context):\n"
        "    service = event['service']\n    client(service).describe_instances()\n"
        "    keep = [client('ec2')]\n    boto3.client('ec2').terminate_instances(InstanceIds=[])\n"
        "    client('ec2').launch_rockets()\n")
    problems = handler_calls("tasks.handler.handler", root=tmp_path).problems
    assert sorted(problems) == [
        "tasks/handler.py:handler: boto3.client used directly; use tasks.aws.clients.client()",
        "tasks/handler.py:handler: client('ec2') used other than by calling a method on it",
        "tasks/handler.py:handler: client() with a non-literal service",
        "tasks/handler.py:handler: ec2.launch_rockets is not a ec2 API operation",
    ]


def test_iam_action_names_come_from_botocore() -> None:
    assert iam_action("stepfunctions", "list_executions") == "states:ListExecutions"
    assert iam_action("autoscaling", "terminate_instance_in_auto_scaling_group") == (
        "autoscaling:TerminateInstanceInAutoScalingGroup")


# --- scoping (issue #4, point 5) ----------------------------------------------------------------------------


@pytest.mark.parametrize(("what", "policy"), _all_policies(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_statement_is_scoped(what: str, policy: dict[str, Any]) -> None:
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        actions, resources = _actions(statement), _resources(statement)
        condition = statement.get("Condition", {})
        assert statement["Effect"] == "Allow"
        assert all("*" not in a and "?" not in a for a in actions), f"{what}: wildcard action in {statement}"
        if "*" in resources:
            assert resources == ["*"], statement
            assert set(actions) <= set(iam.NO_RESOURCE_LEVEL), f"{what}: {statement['Sid']} could be scoped"
            # the Price List API answers in its own region only; everything else in the stack's
            region = PRICING_REGION if all(a.startswith("pricing:") for a in actions) else SCOPE.region
            assert condition == {"StringEquals": {"aws:RequestedRegion": region}}, statement
        assert all(r == "*" or r.startswith("arn:aws:") for r in resources)
        for action in set(actions) & DESTRUCTIVE_GROUP_ACTIONS:
            assert condition["StringEquals"]["autoscaling:ResourceTag/AsgOptimiser"] == "true", (what, action)
        for action in set(actions) & DESTRUCTIVE_EC2_ACTIONS:
            assert condition["Null"] == {"ec2:ResourceTag/AsgOptimiser:Execution": "false"}, (what, action)
            assert resources == [SCOPE.ec2_arn("instance")]
        if set(actions) & {"autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"}:
            assert condition["ForAllValues:StringLike"] == {"aws:TagKeys": ["AsgOptimiser:*"]}
        if set(actions) & LAUNCH_ACTIONS:
            if any(r.endswith(":instance/*") for r in resources):
                assert resources == [SCOPE.ec2_arn("instance")]
                assert condition == {"Null": {"aws:RequestTag/AsgOptimiser:Replaces": "false",
                                              "aws:RequestTag/AsgOptimiser:Execution": "false"}}
            else:  # the launch's other resources: never an instance, never everything
                assert not any(":instance/" in r or r == "*" for r in resources), statement
        if "ec2:CreateTags" in actions:  # tag on launch only: the fleet's launches, or a plain RunInstances
            assert condition in ({"StringEquals": {"ec2:CreateAction": ["CreateFleet", "RunInstances"]}},
                                 {"StringEquals": {"ec2:CreateAction": "RunInstances"}}), statement
        if "iam:PassRole" in actions:
            assert actions == ["iam:PassRole"]
            assert resources == ["arn:aws:iam::123456789012:role/asg-instance-*"]
            assert condition == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
        if "iam:CreateServiceLinkedRole" in actions:
            assert condition == {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}
        if set(actions) & {"states:StartExecution"}:
            assert len(resources) == 1 and resources[0] in MACHINE_ARNS, statement
        if set(actions) & {"states:ListExecutions"}:  # the sweep lists the executions of both workflows
            assert resources and set(resources) <= MACHINE_ARNS, statement
        if any(a.startswith("dynamodb:") for a in actions):
            assert resources and set(resources) <= TABLE_ARNS, statement
        if set(actions) & {"logs:CreateLogStream", "logs:PutLogEvents"}:
            assert all(":log-group:/aws/lambda/asg-optimizer-" in r for r in resources)
        if "sqs:SendMessage" in actions:
            assert resources == [SCOPE.dead_letter_queue_arn()]


def test_no_resource_level_list_matches_the_iam_reference() -> None:
    """Each action we grant on "*" really has no resource type (parliament's copy of the IAM reference)."""
    for action in iam.NO_RESOURCE_LEVEL:
        service, name = action.split(":")
        types = [t["resource_type"] for t in get_privilege_info(service, name)["resource_types"]]
        assert types == [""], f"{action} supports resource types {types}: scope it"


def test_unscoped_refuses_an_action_that_supports_resources() -> None:
    with pytest.raises(ValueError, match=r"^ec2:TerminateInstances support\(s\) resource-level permissions"):
        iam.unscoped(CTX, "Bad", "ec2:DescribeInstances", "ec2:TerminateInstances")


def test_state_machine_may_invoke_exactly_its_functions() -> None:
    for machine in STACK.state_machines:
        policy = iam.state_machine_policy(CTX, machine)
        (invoke,) = _allows(policy, "lambda:InvokeFunction")
        expected = {f"arn:aws:lambda:eu-west-1:123456789012:function:asg-optimizer-{key}"
                    for key in machine.substitutions.values()}
        assert set(_resources(invoke)) == expected
        children = {"states:StartExecution", "states:DescribeExecution", "states:StopExecution",
                    "events:PutTargets", "events:PutRule", "events:DescribeRule"} if machine.machines else set()
        assert iam.actions_of(policy) - set(iam.NO_RESOURCE_LEVEL) == {"lambda:InvokeFunction", *children}


def test_a_rollout_starts_and_follows_only_replacement_executions() -> None:
    """`.sync:2` children (AWS's documented policy): the replacement machine's executions and the managed rule."""
    policy = iam.state_machine_policy(CTX, STACK.state_machine("rollout"))
    replace = STACK.state_machine(REPLACE).name()
    assert _resources(_allows(policy, "states:StartExecution")[0]) == [CTX.machine_arn(REPLACE)]
    assert _resources(_allows(policy, "states:DescribeExecution")[0]) == [
        f"arn:aws:states:eu-west-1:123456789012:execution:{replace}:*"]
    assert _resources(_allows(policy, "events:PutRule")[0]) == [
        "arn:aws:events:eu-west-1:123456789012:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"]


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.key)
def test_functions_reach_only_the_tables_and_state_machines_they_are_given(function: Function) -> None:
    """A function touches a table or starts/lists a state machine only if its environment names it (or the
    machine runs it)."""
    if function.key not in iam.POLICIES:
        pytest.skip("no policy (test_every_function_in_the_stack_has_a_policy_entry fails)")
    given = {f"arn:aws:dynamodb:eu-west-1:123456789012:table/{t.name()}" for t in STACK.tables
             if t.environment in function.environment}
    given |= {CTX.machine_arn(key) for name, key in STATE_MACHINE_ARN_ENVIRONMENT.items()
              if name in function.environment}
    # a step gets the ARN of the machine running it in its input (Validate lists that machine's executions)
    given |= {CTX.machine_arn(m.key) for m in STACK.state_machines if function.key in m.substitutions.values()}
    reached = {r for s in _policy(function)["Statement"] for r in _resources(s)
               if ":dynamodb:" in r or ":states:" in r}
    assert reached <= given, f"{function.key} reaches {sorted(reached - given)} without being given it"


def test_dead_letter_permission_only_for_event_targets() -> None:
    function = STACK.functions[0]
    assert "sqs:SendMessage" in iam.actions_of(_policy(function, dead_letter=True))
    assert "sqs:SendMessage" not in iam.actions_of(_policy(function, dead_letter=False))


def test_trust_policies_guard_against_the_confused_deputy() -> None:
    arn = CTX.machine_arn(REPLACE)
    trust = iam.assume_role("states.amazonaws.com", account=SCOPE.account, source_arn=arn)
    assert trust["Statement"] == [{
        "Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}, "ArnLike": {"aws:SourceArn": arn}},
    }]


def test_dead_letter_queue_accepts_only_our_rules() -> None:
    policy = iam.dead_letter_queue_policy(CTX, ["scan", "instance-launched"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": [
        "arn:aws:events:eu-west-1:123456789012:rule/asg-optimizer-instance-launched",
        "arn:aws:events:eu-west-1:123456789012:rule/asg-optimizer-scan"]}}


# --- parliament ----------------------------------------------------------------------------------------------


def _accepted(finding: Any, policy: dict[str, Any]) -> bool:
    """The two findings our design makes on purpose, each accepted only in exactly its expected shape."""
    if finding.issue != "RESOURCE_MISMATCH":
        return False
    detail = finding.detail
    # ListExecutions also accepts a Map Run ARN; we only ever list our own state machine's executions.
    if detail == [{"action": "states:ListExecutions", "required_format": "arn:*:states:*:*:mapRun:*/*:*"}]:
        return True
    # DescribeExecution also accepts an Express execution ARN; a rollout's children are Standard executions.
    if detail == [{"action": "states:DescribeExecution", "required_format": "arn:*:states:*:*:express:*:*:*"}]:
        return True
    # CreateFleet/RunInstances are split on purpose: the instance with the request-tag conditions, the other
    # resources (template, AMI, subnet, the fleet...) without (they cannot carry our tags). Parliament checks one
    # statement at a time; accept it only if the action's statements together cover every type it asks for.
    if {d["action"] for d in detail} <= LAUNCH_ACTIONS:
        return all(_resource_type(d["required_format"]) in {
            _resource_type(r) for s in _allows(policy, d["action"]) for r in _resources(s)} for d in detail)
    return False


def _resource_type(arn: str) -> str:
    """`arn:*:ec2:*:*:instance/*` -> `instance`."""
    return arn.split(":", 5)[5].split("/")[0]


@pytest.mark.parametrize(("what", "policy"), _all_policies(), ids=lambda v: v if isinstance(v, str) else "")
def test_parliament_finds_nothing(what: str, policy: dict[str, Any]) -> None:
    findings = analyze_policy_string(iam.dumps(policy)).findings
    unexpected = [(f.issue, f.detail) for f in findings if not _accepted(f, policy)]
    assert not unexpected, f"{what}: {unexpected}"


def test_parliament_filter_is_not_a_blanket_pass() -> None:
    """Drop the instance from the launch policy and the RESOURCE_MISMATCH must no longer be accepted."""
    policy = _policy(STACK.function("launch-spot"))
    broken = json.loads(json.dumps(policy))
    broken["Statement"] = [s for s in broken["Statement"] if s["Sid"] != "LaunchTaggedInstances"]
    findings = analyze_policy_string(iam.dumps(broken)).findings
    assert any(f.issue == "RESOURCE_MISMATCH" and not _accepted(f, broken) for f in findings)


def test_the_embedded_aws_denies_exactly_the_group_changes_the_deployed_iam_scopes_to_opted_in_groups() -> None:
    """asg_optimizer.local.iam_model refuses a function's change to a group that is not opted in, as this policy
    does in an account: the two lists must not drift (a swap that works locally must work in AWS)."""
    from asg_optimizer.local.iam_model import GROUP_CHANGING_ACTIONS

    scoped = {action for _, policy in _all_policies() for s in policy["Statement"] for action in _actions(s)
              if action.startswith("autoscaling:") and "autoscaling:ResourceTag/AsgOptimiser"
              in json.dumps(s.get("Condition", {}))}
    assert scoped == {f"autoscaling:{operation}" for operation in GROUP_CHANGING_ACTIONS}


def test_encrypted_volumes_need_kms_create_grant_for_an_aws_resource_on_exactly_the_configured_keys() -> None:
    """EC2 launches volumes under a customer managed KMS key (template or encrypted AMI) only if the caller may use
    the key: kms:CreateGrant with kms:GrantIsForAWSResource, Decrypt, DescribeKey, GenerateDataKeyWithoutPlaintext
    and ReEncrypt (From/To: no wildcard actions). The launcher alone gets it, on the configured keys only."""
    settings = parse_settings({"kmsKeyArns": f"{KMS_KEY}, {KMS_KEY.replace('1234abcd', 'feedbeef')}"})
    assert settings.kms_key_arns == (KMS_KEY, KMS_KEY.replace("1234abcd", "feedbeef"))
    ctx = iam.Context(SCOPE, STACK, "asg-instance-*", settings.kms_key_arns)
    launcher = iam.function_policy(ctx, STACK.function("launch-spot"), dead_letter=False)
    [grant] = _allows(launcher, "kms:CreateGrant")
    assert _resources(grant) == list(settings.kms_key_arns)
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    for action in ("kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom",
                   "kms:ReEncryptTo"):
        [statement] = _allows(launcher, action)
        assert _resources(statement) == list(settings.kms_key_arns)
    others = [iam.function_policy(ctx, f, dead_letter=False) for f in FUNCTIONS
              if f.key != "launch-spot" and f.key in iam.POLICIES]
    assert not [s for policy in others for s in policy["Statement"] if any(a.startswith("kms:") for a in _actions(s))]
    unset = iam.function_policy(iam.Context(SCOPE, STACK), STACK.function("launch-spot"), dead_letter=False)
    assert not _allows(unset, "kms:CreateGrant")
    with pytest.raises(ConfigError, match=r"^asg-optimizer:kmsKeyArns: must be KMS key ARNs .*'alias/ebs'"):
        parse_settings({"kmsKeyArns": "alias/ebs"})
