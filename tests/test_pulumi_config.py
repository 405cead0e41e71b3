"""Stack config: defaults, the example file, and one clear error naming the key for every bad value."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from pulumi.runtime import config as runtime_config

from infra.config import KEYS, NAMESPACE, ConfigError, Settings, load_settings, parse_settings, schedule_problem
from stack.description import STACK, Schedule

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "Pulumi.example.yaml"


def test_defaults_without_config() -> None:
    settings = parse_settings({})
    assert settings == Settings(schedules={s.key: s.expression for s in STACK.schedules})
    assert (settings.architecture, settings.runtime, settings.log_retention_days) == ("arm64", "python3.12", 30)
    assert settings.layer_arn("aws", "eu-west-1") == (
        "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:27")


def test_layer_follows_runtime_and_architecture_or_is_taken_as_configured() -> None:
    settings = parse_settings({"runtime": "python3.13", "architecture": "x86_64", "powertoolsLayerVersion": "30"})
    assert settings.layer_arn("aws", "us-east-2") == (
        "arn:aws:lambda:us-east-2:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:30")
    own = "arn:aws-cn:lambda:cn-north-1:498634801083:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:18"
    assert parse_settings({"powertoolsLayerArn": own}).layer_arn("aws-cn", "cn-north-1") == own
    with pytest.raises(ConfigError, match=r"^asg-optimizer:powertoolsLayerArn: must be set in partition 'aws-cn'"):
        parse_settings({}).layer_arn("aws-cn", "cn-north-1")


def test_values_arrive_as_strings_and_are_converted() -> None:
    settings = parse_settings({"memorySize": "1024", "logRetentionDays": "90", "alarmEmail": "ops@example.com",
                               "schedules": '{"scan": "rate(1 minute)"}', "environment": {"TEAM": "infra"}})
    assert (settings.memory_size, settings.log_retention_days) == (1024, 90)
    assert settings.memory_for(256) == 1024 and parse_settings({}).memory_for(256) == 256
    assert settings.schedules["scan"] == "rate(1 minute)"
    assert settings.environment == {"TEAM": "infra"}


@pytest.mark.parametrize(("raw", "message"), [
    ({"memorySize": "64"}, "asg-optimizer:memorySize: must be from 128 to 10240 (MB), got '64'"),
    ({"memorySize": "10241"}, "asg-optimizer:memorySize: must be from 128 to 10240 (MB), got '10241'"),
    ({"memorySize": "512MB"}, "asg-optimizer:memorySize: must be a whole number, got '512MB'"),
    ({"memorySize": "1.5"}, "asg-optimizer:memorySize: must be a whole number, got '1.5'"),
    ({"schedules": {"scan": "rate(5 minute)"}},
     "asg-optimizer:schedules.scan: a rate of 1 takes a singular unit (minute, hour, day), any other value a plural "
     "one, got 'rate(5 minute)'"),
    ({"schedules": {"scan": "every 5 minutes"}},
     "asg-optimizer:schedules.scan: expected rate(<n> <minute(s)|hour(s)|day(s)>) or cron(<6 fields>), "
     "got 'every 5 minutes'"),
    ({"schedules": {"scan": "cron(0 12 * * ? *"}},
     "asg-optimizer:schedules.scan: expected rate(<n> <minute(s)|hour(s)|day(s)>) or cron(<6 fields>), "
     "got 'cron(0 12 * * ? *'"),
    ({"schedules": {"scanner": "rate(5 minutes)"}},
     "asg-optimizer:schedules: has no schedule 'scanner' (known: " + ", ".join(sorted(s.key for s in STACK.schedules))
     + "), got 'scanner'"),
    ({"schedules": "rate(5 minutes)"},
     "asg-optimizer:schedules: must be a map (pulumi config set --path 'name.key' value), got 'rate(5 minutes)'"),
    ({"architecture": "arm"}, "asg-optimizer:architecture: must be one of arm64, x86_64, got 'arm'"),
    ({"runtime": "python3.11"}, "asg-optimizer:runtime: must be one of python3.12, python3.13, got 'python3.11'"),
    ({"logLevel": "info"}, "asg-optimizer:logLevel: must be one of DEBUG, INFO, WARNING, ERROR, got 'info'"),
    ({"logRetentionDays": "10"}, "asg-optimizer:logRetentionDays: must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, "
     "150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653, got '10'"),
    ({"alarmEmail": "ops.example.com"}, "asg-optimizer:alarmEmail: must be an email address, got 'ops.example.com'"),
    ({"prefix": "9lives"},
     "asg-optimizer:prefix: must start with a letter and hold only letters, digits and '-', got '9lives'"),
    ({"instanceRolePattern": "role name"}, "asg-optimizer:instanceRolePattern: must be an IAM role name or path "
     "pattern (letters, digits, +=,.@_-/ and the wildcards * ?), got 'role name'"),
    ({"powertoolsLayerVersion": "0"}, "asg-optimizer:powertoolsLayerVersion: must be at least 1, got '0'"),
    ({"environment": {"AWS_REGION": "x"}}, "asg-optimizer:environment: 'AWS_REGION' is not a settable environment "
     "variable name (letters, digits, '_'; not reserved by Lambda)"),
    ({"memorysize": "512"}, "asg-optimizer:memorysize: unknown setting (did you mean 'memorySize'?)"),
])
def test_bad_value_is_one_error_naming_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_settings(raw)
    assert str(error.value) == message


def test_prefix_too_long_names_the_resource_that_would_not_fit() -> None:
    prefix = "a" * 50
    with pytest.raises(ConfigError, match=r"^asg-optimizer:prefix: is too long: the name of function "):
        parse_settings({"prefix": prefix})
    parse_settings({"prefix": "a" * 20})


def test_a_bad_default_schedule_in_the_stack_description_is_caught_too() -> None:
    stack = replace(STACK, schedules=(Schedule("nightly", STACK.functions[0].key, "cron(0 3 * * * *)", "x"),))
    with pytest.raises(ConfigError) as error:
        parse_settings({}, stack)
    assert str(error.value) == ("asg-optimizer:schedules.nightly: exactly one of day-of-month and day-of-week must "
                                "be '?', got 'cron(0 3 * * * *)'")


@pytest.mark.parametrize(("expression", "valid"), [
    ("rate(1 minute)", True), ("rate(5 minutes)", True), ("rate(1 hour)", True), ("rate(2 days)", True),
    ("rate(0 minutes)", False), ("rate(1 minutes)", False), ("rate(2 hour)", False), ("rate(5 seconds)", False),
    ("cron(0/5 * * * ? *)", True), ("cron(0 3 ? * MON-FRI *)", True), ("cron(15 10 L * ? 2030)", True),
    ("cron(0 3 * * *)", False), ("cron(0 3 ? * ? *)", False), ("cron(0 3 1 * 1 *)", False), ("", False),
])
def test_schedule_expressions(expression: str, valid: bool) -> None:
    assert (schedule_problem(expression) is None) is valid


def test_example_file_lists_every_key_and_its_values_are_the_defaults() -> None:
    text = EXAMPLE.read_text()
    mentioned = set(re.findall(rf"^\s*#?\s*{NAMESPACE}:(\w+):", text, flags=re.MULTILINE))
    assert mentioned == set(KEYS), f"Pulumi.example.yaml and infra.config.KEYS differ: {mentioned ^ set(KEYS)}"
    values = {k.split(":", 1)[1]: v for k, v in yaml.safe_load(text)["config"].items()
              if k.startswith(f"{NAMESPACE}:")}
    as_config = {k: v if isinstance(v, dict) else str(v) for k, v in values.items()}
    assert parse_settings(as_config) == parse_settings({})
    assert values["schedules"] == {s.key: s.expression for s in STACK.schedules}


def test_operations_doc_deploy_section_documents_every_key() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    start = text.index("\n## Deploy\n")
    doc = text[start:text.index("\n## ", start + 1)]
    missing = [key for key in KEYS if f"`{key}`" not in doc]
    assert not missing, f"docs/operations.md's Deploy section does not document {missing}"


@pytest.fixture
def pulumi_config():  # type: ignore[no-untyped-def]
    """Stack config as the Pulumi engine hands it to the program; reset afterwards (it is process-global)."""

    def set_config(values: dict[str, str]) -> None:
        runtime_config.set_all_config(values)

    yield set_config
    runtime_config.set_all_config({})


def test_load_settings_reads_the_stack_config(pulumi_config) -> None:  # type: ignore[no-untyped-def]
    pulumi_config({"asg-optimizer:memorySize": "512", "asg-optimizer:schedules": '{"scan": "rate(15 minutes)"}',
                   "aws:region": "eu-west-1"})
    settings = load_settings()
    assert settings.memory_size == 512
    assert settings.schedules["scan"] == "rate(15 minutes)"


def test_load_settings_rejects_a_misspelt_key(pulumi_config) -> None:  # type: ignore[no-untyped-def]
    pulumi_config({"asg-optimizer:logRetention": "30"})
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert str(error.value) == "asg-optimizer:logRetention: unknown setting (did you mean 'logRetentionDays'?)"
