"""Many regions from one stack (issue 17 item 6): the `regions` setting under Pulumi's mocks. The provider's region
keeps every name and output it had; each other region gets its own provider, prefixed logical names,
region-qualified IAM roles and dashboard, and IAM scoped to that region."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra import iam
from infra.config import ConfigError, parse_settings
from infra.names import Scope
from stack.description import DEFAULT_PREFIX, REPLACE, STACK, STATE_MACHINE_ARN_ENVIRONMENT
from tests.pulumi_harness import ACCOUNT, REGION, Deployment, deploy_with_mocks

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = str(ROOT / "__main__.py")
OTHER = "us-east-2"
PROVIDER, COMPONENT = "pulumi:providers:aws", "asg-optimizer:index:SpotOptimizer"
ROLE, ROLE_POLICY, FUNCTION = "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy", "aws:lambda/function:Function"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
KEY = "arn:aws:kms:{}:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _regions(*regions: str) -> dict[str, str]:
    return {"asg-optimizer:regions": json.dumps(list(regions))}


@pytest.fixture(scope="module")
def single() -> Deployment:
    return deploy_with_mocks(program=PROGRAM)


@pytest.fixture(scope="module")
def two() -> Deployment:
    return deploy_with_mocks(program=PROGRAM, config={
        **_regions(REGION, OTHER), "aws:profile": "ops",
        "asg-optimizer:kmsKeyArns": f"{KEY.format(REGION)},{KEY.format(OTHER)}"})


def _shape(deployment: Deployment) -> list[tuple[str, str, str, str]]:
    """Every registration, in a stable order (the program registers asynchronously)."""
    return sorted([(r.typ, r.name, r.region, json.dumps(r.inputs, sort_keys=True, default=str))
            for r in deployment.resources if r.typ != "aws:lambda/function:Function"] + [
        (r.typ, r.name, r.region, json.dumps({k: v for k, v in r.inputs.items() if k != "code"}, sort_keys=True))
        for r in deployment.of_type(FUNCTION)])


def test_regions_unset_or_just_the_providers_deploy_exactly_what_they_always_did(single: Deployment) -> None:
    just_home = deploy_with_mocks(program=PROGRAM, config=_regions(REGION))
    assert _shape(just_home) == _shape(single)
    assert just_home.outputs == single.outputs and "regions" not in single.outputs
    assert not single.of_type(PROVIDER) and {r.region for r in single.resources} == {REGION}


def test_each_other_region_gets_its_own_provider_and_a_full_copy(single: Deployment, two: Deployment) -> None:
    [provider] = two.of_type(PROVIDER)
    assert (provider.name, provider.inputs["region"], provider.inputs["profile"]) == (f"aws-{OTHER}", OTHER, "ops")
    assert sorted(c.name for c in two.of_type(COMPONENT)) == ["asg-optimizer", f"asg-optimizer-{OTHER}"]
    home = sorted((r.typ, r.name) for r in two.resources if r.region == REGION and r.typ not in (PROVIDER, COMPONENT))
    # the provider's region: names unchanged
    assert home == sorted((r.typ, r.name) for r in single.resources if r.typ != COMPONENT)
    other = [(r.typ, r.name) for r in two.resources if r.region == OTHER and r.typ not in (PROVIDER, COMPONENT)]
    assert sorted(other) == sorted((typ, f"{OTHER}-{name}") for typ, name in home)
    names = [r.name for r in two.resources]
    assert len(names) == len(set(zip([r.typ for r in two.resources], names, strict=True)))  # URNs unique


def test_account_wide_names_carry_the_region_and_regional_ones_do_not(two: Deployment) -> None:
    roles = [r.inputs["name"] for r in two.of_type(ROLE)]
    assert len(roles) == len(set(roles)) and all(len(n) <= 64 for n in roles)
    assert all(r.inputs["name"].endswith(f"-{OTHER}") == (r.region == OTHER) for r in two.of_type(ROLE))
    dashboards = {r.region: r.inputs["dashboardName"] for r in two.of_type(DASHBOARD)}
    assert dashboards == {REGION: DEFAULT_PREFIX, OTHER: f"{DEFAULT_PREFIX}-{OTHER}"}
    functions = {r.region: sorted(f.inputs["name"] for f in two.of_type(FUNCTION) if f.region == r.region)
                 for r in two.of_type(FUNCTION)}
    assert functions[REGION] == functions[OTHER] == sorted(f.name() for f in STACK.functions)
    for function in two.of_type(FUNCTION):  # each function runs as its own region's role
        role = function.inputs["role"]
        assert role.endswith(f"-{OTHER}") == (function.region == OTHER), role


def test_iam_of_each_region_is_scoped_to_that_region(two: Deployment) -> None:
    """Every regional ARN in another region's policies is in that region; `*` resources carry its
    aws:RequestedRegion (the Price List API's us-east-1 aside); each launcher may use its own region's key only;
    each function starts executions of its own region's state machines."""
    scope = Scope("aws", OTHER, ACCOUNT, DEFAULT_PREFIX)
    ctx = iam.Context(scope, STACK, kms_key_arns=(KEY.format(OTHER),))
    for policy_resource in two.of_type(ROLE_POLICY):
        if policy_resource.region != OTHER:
            continue
        policy = json.loads(policy_resource.inputs["policy"])
        text = json.dumps(policy)
        regions = set(re.findall(r'"arn:aws:[a-z0-9-]+:([a-z0-9-]*):', text))
        assert regions <= {OTHER, ""}, (policy_resource.name, regions)
        for statement in policy["Statement"]:
            if statement["Resource"] == "*":
                wanted = "us-east-1" if statement["Action"] == ["pricing:GetProducts"] else OTHER
                assert statement["Condition"]["StringEquals"]["aws:RequestedRegion"] == wanted
    launcher = next(p for p in two.of_type(ROLE_POLICY) if p.name == f"{OTHER}-launch-spot-function-role")
    assert json.loads(launcher.inputs["policy"]) == iam.function_policy(ctx, STACK.function("launch-spot"))
    home_launcher = json.dumps(json.loads(two.one(ROLE_POLICY, "launch-spot-function-role").inputs["policy"]))
    assert KEY.format(REGION) in home_launcher and KEY.format(OTHER) not in home_launcher
    for function in two.of_type(FUNCTION):
        for name in STATE_MACHINE_ARN_ENVIRONMENT:
            value = function.inputs["environment"]["variables"].get(name)
            assert value is None or value.startswith(f"arn:aws:states:{function.region}:"), (function.name, value)


def test_outputs_per_region_beside_the_providers_own(single: Deployment, two: Deployment) -> None:
    flat = {k: v for k, v in two.outputs.items() if k != "regions"}
    assert flat == single.outputs
    assert set(two.outputs["regions"]) == {REGION, OTHER}
    assert two.outputs["regions"][REGION] == single.outputs
    other = two.outputs["regions"][OTHER]
    machine = STACK.state_machine(REPLACE).name()
    assert other["stateMachineArn"] == f"arn:aws:states:{OTHER}:{ACCOUNT}:stateMachine:{machine}"
    assert f"--region {OTHER} --state-machine-arn {other['stateMachineArn']}" in other["manualTriggerCommand"]
    assert other["dashboardUrl"] == (f"https://{OTHER}.console.aws.amazon.com/cloudwatch/home?region={OTHER}"
                                     f"#dashboards/dashboard/{DEFAULT_PREFIX}-{OTHER}")
    assert other["deadLetterQueueUrl"] == f"https://sqs.{OTHER}.amazonaws.com/{ACCOUNT}/asg-optimizer-dead-letters"


def test_regions_without_the_providers_use_their_own_providers_only() -> None:
    away = deploy_with_mocks(program=PROGRAM, config=_regions(OTHER, "ap-southeast-2"))
    assert {p.inputs["region"] for p in away.of_type(PROVIDER)} == {OTHER, "ap-southeast-2"}
    assert {r.region for r in away.resources if r.typ not in (PROVIDER, COMPONENT)} == {OTHER, "ap-southeast-2"}
    assert set(away.outputs) == {"regions"} and set(away.outputs["regions"]) == {OTHER, "ap-southeast-2"}


@pytest.mark.parametrize(("value", "message"), [
    ("eu-wset-1", "asg-optimizer:regions: is not an AWS region (did you mean 'eu-west-1'?), got 'eu-wset-1'"),
    ('["us-east-1", "us-east-1"]', "asg-optimizer:regions: lists a region twice, got 'us-east-1'"),
    ("us-east-1,cn-north-1", "asg-optimizer:regions: spans partitions aws, aws-cn (one stack deploys into one "
                             "account: one stack per partition), got 'us-east-1,cn-north-1'"),
    ("{}", "asg-optimizer:regions: must be a list of region names or a comma-separated string, got {}"),
])
def test_a_bad_regions_setting_is_one_line_and_registers_nothing(value: str, message: str) -> None:
    raw: object = {} if value == "{}" else value
    with pytest.raises(ConfigError) as refused:
        parse_settings({"regions": raw})
    assert str(refused.value) == message
    record = Deployment()
    if isinstance(raw, str):
        with pytest.raises(ConfigError) as error:
            deploy_with_mocks(program=PROGRAM, config={"asg-optimizer:regions": value}, into=record)
        assert str(error.value) == message
        assert record.resources == []


def test_regions_are_parsed_from_a_list_or_a_comma_separated_string() -> None:
    assert parse_settings({"regions": "eu-west-1, us-east-2"}).regions == ("eu-west-1", "us-east-2")
    assert parse_settings({"regions": ["eu-west-1"]}).regions == ("eu-west-1",)
    assert parse_settings({}).regions == () and parse_settings({}).regions_for("sa-east-1") == ("sa-east-1",)


def test_an_own_layer_cannot_serve_other_regions_and_long_prefixes_are_checked_per_region() -> None:
    layer = "arn:aws:lambda:eu-west-1:123456789012:layer:powertools:3"
    assert parse_settings({"powertoolsLayerArn": layer, "regions": "eu-west-1"}).powertools_layer_arn == layer
    with pytest.raises(ConfigError) as refused:
        parse_settings({"powertoolsLayerArn": layer, "regions": "eu-west-1,us-east-2"})
    assert str(refused.value) == (
        "asg-optimizer:powertoolsLayerArn: is a layer of eu-west-1, which Lambda cannot use in us-east-2 (a layer "
        f"serves its own region only): unset it or deploy one region per stack, got '{layer}'")
    prefix = "p" * 30  # fits alone; the longest role plus "-ap-southeast-2" does not
    parse_settings({"prefix": prefix})
    with pytest.raises(ConfigError, match=r"^asg-optimizer:prefix: is too long: the name of role of state machine "
                                          r"\S+ in ap-southeast-2, '\S+-ap-southeast-2', exceeds 64 characters"):
        parse_settings({"prefix": prefix, "regions": "ap-southeast-2"})
