"""Stack configuration: every `pulumi config` key, its default, and the check that rejects a bad value.

Parsing is a pure function over a plain mapping, so the rules are unit-tested without Pulumi; `load_settings`
only collects the raw values from `pulumi.Config`. A bad value stops `pulumi up` before any resource is touched,
with one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.names import physical_names
from stack.description import DEFAULT_PREFIX, STACK, Stack
from tasks.core.errors import InvalidInput
from tasks.core.pause import DEFAULT_FAILURE_BUDGET, alarm_names

NAMESPACE = "asg-optimizer"

ARCHITECTURES = ("arm64", "x86_64")
RUNTIMES = ("python3.12", "python3.13")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The values CloudWatch Logs accepts for a log group's retention (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)
MEMORY_MB = (128, 10240)
# AWS's public Powertools for AWS Lambda (Python) v3 layer, published per region, runtime and architecture.
POWERTOOLS_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_VERSION = 27
# Lambda reserves these names; the managed ones are set by the stack itself (infra/environment.py).
_RESERVED_ENV = re.compile(r"^(AWS_|LAMBDA_|_HANDLER$|_X_AMZN_TRACE_ID$|TZ$)")


class ConfigError(ValueError):
    """One bad stack setting; the message names the full key (`asg-optimizer:<key>`) and the bad value."""


def _key(name: str) -> str:
    return f"{NAMESPACE}:{name}"


def _fail(name: str, message: str, value: Any) -> ConfigError:
    return ConfigError(f"{_key(name)}: {message}, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """The validated stack settings; defaults are what an unconfigured stack deploys."""

    prefix: str = DEFAULT_PREFIX
    architecture: str = "arm64"
    runtime: str = "python3.12"
    powertools_layer_arn: str | None = None
    powertools_layer_version: int = POWERTOOLS_LAYER_VERSION
    memory_size: int | None = None
    log_retention_days: int = 30
    log_level: str = "INFO"
    schedules: dict[str, str] = field(default_factory=dict)
    instance_role_pattern: str = "*"
    alarm_email: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    pause_alarms: tuple[str, ...] = ()
    pause_failure_budget: int = DEFAULT_FAILURE_BUDGET
    commitments: str = "use"  # use | ignore: RI / Savings Plan awareness, account-wide
    savings_plan_reserve_per_hour: float = 0.0  # $/h of Savings Plans left for usage outside opted-in groups
    kms_key_arns: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()  # where to deploy; empty: the AWS provider's own region only

    def regions_for(self, provider_region: str) -> tuple[str, ...]:
        """The regions this stack deploys into: `regions`, else the provider's."""
        return self.regions or (provider_region,)

    def layer_arn(self, partition: str, region: str) -> str:
        """The Powertools layer: the configured ARN, else AWS's public v3 layer for this runtime/architecture."""
        if self.powertools_layer_arn:
            return self.powertools_layer_arn
        if partition != "aws":
            raise ConfigError(
                f"{_key('powertoolsLayerArn')}: must be set in partition {partition!r} "
                f"(the default layer is published in the aws partition only)"
            )
        python = self.runtime.replace(".", "")
        return (
            f"arn:aws:lambda:{region}:{POWERTOOLS_ACCOUNT}:layer:"
            f"AWSLambdaPowertoolsPythonV3-{python}-{self.architecture}:{self.powertools_layer_version}"
        )

    def memory_for(self, default: int) -> int:
        return self.memory_size if self.memory_size is not None else default


# key -> one-line description; the example file and docs/operations.md list exactly these (a test keeps them in step).
KEYS: dict[str, str] = {
    "prefix": "name prefix of every resource",
    "architecture": "Lambda architecture: arm64 or x86_64",
    "runtime": "Lambda runtime: python3.12 or python3.13",
    "powertoolsLayerArn": "Powertools layer ARN (default: AWS's public v3 layer for runtime and architecture)",
    "powertoolsLayerVersion": "version of AWS's public Powertools v3 layer, when powertoolsLayerArn is unset",
    "memorySize": "memory (MB) of every function, 128-10240 (default: each function's own)",
    "logRetentionDays": "retention of the functions' and state machines' log groups",
    "logLevel": "POWERTOOLS_LOG_LEVEL of the functions: DEBUG, INFO, WARNING or ERROR",
    "schedules": "map of schedule key -> EventBridge rate(...) or cron(...) expression",
    "instanceRolePattern": "role names (IAM wildcards allowed) the launcher may pass to EC2 as instance profile",
    "alarmEmail": "email subscribed to the failed-executions alarm (unset: alarm without notification)",
    "kmsKeyArns": "KMS key ARNs (comma-separated or a list) of encrypted volumes/AMIs in the groups' templates",
    "environment": "map of extra environment variables for every function",
    "pauseAlarms": "CloudWatch metric alarms (list, or comma-separated); one in ALARM pauses the whole fleet",
    "pauseFailureBudget": "failed swaps per hour the fleet tolerates; one more pauses it (0: the first pauses it)",
    "commitments": "use or ignore: keep on-demand that RIs and Savings Plans pay for, swap spots back when idle",
    "savingsPlanReservePerHour": "USD per hour of Savings Plan commitment left for usage outside opted-in groups",
    "regions": "AWS regions to deploy into from this one stack (list, or comma-separated; default: aws:region)",
}

_RATE = re.compile(r"^rate\((?P<value>\d+) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((?P<fields>[^()]+)\)$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,#-]+$")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_ROLE_PATTERN = re.compile(r"^[A-Za-z0-9+=,.@_/*?-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-fA-F-]+$")
_LAYER_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]+:\d+$")


def schedule_problem(expression: str) -> str | None:
    """Why EventBridge would reject `expression` as a rule schedule, or None when it is valid."""
    rate = _RATE.match(expression)
    if rate:
        value, unit = int(rate["value"]), rate["unit"]
        if value < 1:
            return "a rate must be at least 1"
        if (value == 1) != (not unit.endswith("s")):
            return "a rate of 1 takes a singular unit (minute, hour, day), any other value a plural one"
        return None
    cron = _CRON.match(expression)
    if cron:
        fields = cron["fields"].split()
        if len(fields) != 6:
            return "a cron expression has 6 fields: minutes hours day-of-month month day-of-week year"
        if not all(_CRON_FIELD.match(f) for f in fields):
            return "a cron field may hold only digits, names, and the characters * ? / , - # L W"
        if (fields[2] == "?") == (fields[4] == "?"):
            return "exactly one of day-of-month and day-of-week must be '?'"
        return None
    return "expected rate(<n> <minute(s)|hour(s)|day(s)>) or cron(<6 fields>)"


def _text(raw: Mapping[str, Any], name: str, default: str) -> str:
    value = raw.get(name, default)
    if not isinstance(value, str) or not value:
        raise _fail(name, "must be a non-empty string", value)
    return value


def _choice(raw: Mapping[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = raw.get(name, default)
    if value not in allowed:
        raise _fail(name, f"must be one of {', '.join(allowed)}", value)
    return str(value)


def _failure_budget(raw: Mapping[str, Any]) -> int:
    budget = _integer(raw, "pauseFailureBudget")
    return DEFAULT_FAILURE_BUDGET if budget is None else budget


def _integer(raw: Mapping[str, Any], name: str) -> int | None:
    """Pulumi config values arrive as strings; accept '512' and 512, nothing else (no 512.5, no True)."""
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not re.fullmatch(r"\d+", str(value).strip()):
        raise _fail(name, "must be a whole number", value)
    return int(str(value).strip())


def _mapping(raw: Mapping[str, Any], name: str) -> dict[str, str]:
    """A map setting (`pulumi config set --path 'name.key' value`); a JSON string is accepted too."""
    value = raw.get(name, {})
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _fail(name, "must be a map (pulumi config set --path 'name.key' value)", value) from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _fail(name, "must be a map of strings (pulumi config set --path 'name.key' value)", value)
    return dict(value)


def _schedules(raw: Mapping[str, Any], stack: Stack) -> dict[str, str]:
    overrides = _mapping(raw, "schedules")
    known = {s.key: s.expression for s in stack.schedules}
    for key in overrides:
        if key not in known:
            raise _fail("schedules", f"has no schedule {key!r} (known: {', '.join(sorted(known)) or 'none'})", key)
    expressions = known | overrides
    for key, expression in expressions.items():
        problem = schedule_problem(expression)
        if problem:
            raise ConfigError(f"{_key('schedules')}.{key}: {problem}, got {expression!r}")
    return expressions


def known_regions() -> dict[str, str]:
    """Every region botocore knows -> its partition (aws, aws-cn, aws-us-gov, ...)."""
    import botocore.session

    probe = botocore.session.get_session()
    return {region: partition for partition in probe.get_available_partitions()
            for region in probe.get_available_regions("ec2", partition_name=partition)}


def _json_list(value: Any, name: str, message: str) -> Any:
    """A list given as a JSON string (how `pulumi config set name '["a","b"]'` stores it) decoded; any other value as
    it came. A string that starts like a list but is not JSON fails with `message`."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise _fail(name, message, value) from None
    return value


def _regions(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """A list (`pulumi config set --path 'regions[0]' eu-west-1`, or a JSON list) or a comma-separated string of
    known region names, each once, all in one partition (one account cannot span partitions)."""
    value = raw.get("regions")
    if value is None:
        return ()
    value = _json_list(value, "regions", "must be a list of region names or a comma-separated string")
    if isinstance(value, str):
        value = [r.strip() for r in value.split(",") if r.strip()]
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise _fail("regions", "must be a list of region names or a comma-separated string", value)
    known = known_regions()
    for region in value:
        if region not in known:
            close = difflib.get_close_matches(region, sorted(known), n=1)
            raise _fail("regions", "is not an AWS region" + (f" (did you mean {close[0]!r}?)" if close else
                                                              " (e.g. us-east-1)"), region)
        if value.count(region) > 1:
            raise _fail("regions", "lists a region twice", region)
    partitions = {known[r] for r in value}
    if len(partitions) > 1:
        raise _fail("regions", f"spans partitions {', '.join(sorted(partitions))} (one stack deploys into one "
                    "account: one stack per partition)", ",".join(value))
    return tuple(value)


def _names_fit(prefix: str, stack: Stack, regions: tuple[str, ...] = ()) -> None:
    for _, what, name, limit in physical_names(prefix, stack, regions):
        if len(name) > limit:
            raise _fail("prefix", f"is too long: the name of {what}, {name!r}, exceeds {limit} characters", prefix)


def _pause_alarms(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """A list (`pulumi config set --path 'pauseAlarms[0]' name`, or a JSON list) or a comma-separated string."""
    value = raw.get("pauseAlarms")
    if value is None:
        return ()
    value = _json_list(value, "pauseAlarms", "must be a list of alarm names or a comma-separated string")
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise _fail("pauseAlarms", "must be a list of alarm names", value)
        if not value:
            return ()
        value = ",".join(value)
    if not isinstance(value, str):
        raise _fail("pauseAlarms", "must be a list of alarm names or a comma-separated string", value)
    try:
        return alarm_names(value, _key("pauseAlarms"))
    except InvalidInput as error:
        raise ConfigError(str(error)) from None


def parse_settings(raw: Mapping[str, Any], stack: Stack = STACK) -> Settings:
    """Validate raw config values (keys without the namespace) into Settings; raise ConfigError on the first bad one."""
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(KEYS)})"
        raise ConfigError(f"{_key(unknown[0])}: unknown setting{hint}")

    prefix = _text(raw, "prefix", DEFAULT_PREFIX)
    if not _PREFIX.match(prefix):
        raise _fail("prefix", "must start with a letter and hold only letters, digits and '-'", prefix)
    regions = _regions(raw)
    _names_fit(prefix, stack, regions)

    memory = _integer(raw, "memorySize")
    if memory is not None and not MEMORY_MB[0] <= memory <= MEMORY_MB[1]:
        raise _fail("memorySize", f"must be from {MEMORY_MB[0]} to {MEMORY_MB[1]} (MB)", raw["memorySize"])

    retention = _integer(raw, "logRetentionDays")
    if retention is not None and retention not in LOG_RETENTION_DAYS:
        raise _fail("logRetentionDays", f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}",
                    raw["logRetentionDays"])

    layer_version = _integer(raw, "powertoolsLayerVersion")
    if layer_version is not None and layer_version < 1:
        raise _fail("powertoolsLayerVersion", "must be at least 1", raw["powertoolsLayerVersion"])
    layer_arn = raw.get("powertoolsLayerArn")
    if layer_arn is not None and (not isinstance(layer_arn, str) or not _LAYER_ARN.match(layer_arn)):
        raise _fail("powertoolsLayerArn", "must be a layer version ARN (arn:aws:lambda:<region>:<account>:layer:"
                    "<name>:<version>)", layer_arn)

    pattern = _text(raw, "instanceRolePattern", "*")
    if not _ROLE_PATTERN.match(pattern):
        raise _fail("instanceRolePattern", "must be an IAM role name or path pattern (letters, digits, "
                    "+=,.@_-/ and the wildcards * ?)", pattern)

    email = raw.get("alarmEmail")
    if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
        raise _fail("alarmEmail", "must be an email address", email)

    keys = raw.get("kmsKeyArns", [])
    if isinstance(keys, str):
        try:
            keys = json.loads(keys) if keys.startswith("[") else [k.strip() for k in keys.split(",") if k.strip()]
        except json.JSONDecodeError:
            raise _fail("kmsKeyArns", "must be a list of KMS key ARNs", keys) from None
    bad = [k for k in keys if not isinstance(k, str) or not _KMS_KEY_ARN.match(k)] if isinstance(keys, list) else [keys]
    if bad:
        raise _fail("kmsKeyArns", "must be KMS key ARNs (arn:aws:kms:<region>:<account>:key/<key id>; an alias will "
                    "not do: grants need the key)", bad[0])

    environment = _mapping(raw, "environment")
    for name in environment:
        if not _ENV_NAME.match(name) or _RESERVED_ENV.match(name):
            raise ConfigError(f"{_key('environment')}: {name!r} is not a settable environment variable name "
                              "(letters, digits, '_'; not reserved by Lambda)")

    reserve = raw.get("savingsPlanReservePerHour", 0)
    try:
        reserve_amount = float(reserve)
    except (TypeError, ValueError):
        reserve_amount = -1.0
    if isinstance(reserve, bool) or reserve_amount < 0:
        raise _fail("savingsPlanReservePerHour", "must be a number of dollars per hour, 0 or more", reserve)

    if layer_arn is not None and regions and any(r != layer_arn.split(":")[3] for r in regions):
        others = [r for r in regions if r != layer_arn.split(":")[3]]
        raise _fail("powertoolsLayerArn", f"is a layer of {layer_arn.split(':')[3]}, which Lambda cannot use in "
                    f"{', '.join(others)} (a layer serves its own region only): unset it or deploy one region per "
                    "stack", layer_arn)

    return Settings(
        regions=regions,
        pause_alarms=_pause_alarms(raw),
        pause_failure_budget=_failure_budget(raw),
        commitments=_choice(raw, "commitments", "use", ("use", "ignore")),
        savings_plan_reserve_per_hour=reserve_amount,
        prefix=prefix,
        architecture=_choice(raw, "architecture", "arm64", ARCHITECTURES),
        runtime=_choice(raw, "runtime", "python3.12", RUNTIMES),
        powertools_layer_arn=layer_arn,
        powertools_layer_version=layer_version or POWERTOOLS_LAYER_VERSION,
        memory_size=memory,
        log_retention_days=retention or 30,
        log_level=_choice(raw, "logLevel", "INFO", LOG_LEVELS),
        schedules=_schedules(raw, stack),
        instance_role_pattern=pattern,
        alarm_email=email,
        environment=environment,
        kms_key_arns=tuple(keys),
    )


def configured_keys() -> set[str]:
    """Every key set in this stack's config under our namespace, so a typo (`memorysize`) is an error too."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {k.split(":", 1)[1] for k in keys if k.startswith(f"{NAMESPACE}:")}


def load_settings(stack: Stack = STACK) -> Settings:
    """Read this stack's config (`pulumi config set ...`) and validate it."""
    import pulumi

    config = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for name in configured_keys() | set(KEYS):
        value = config.get(name)
        if value is not None:
            raw[name] = value
    return parse_settings(raw, stack)
