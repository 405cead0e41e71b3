"""Physical names and ARNs of everything the stack creates, computed from the prefix and the account.

Because every name is explicit, every ARN is known before anything exists: the IAM policies, the dashboard and
the DLQ policy are plain JSON built from these strings (testable without Pulumi), and a function can receive the
ARN of a state machine that itself invokes functions without a dependency cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from stack.description import EventRule, Schedule, Stack

LAMBDA_NAME_MAX = 64
ROLE_NAME_MAX = 64
STATE_MACHINE_NAME_MAX = 80
RULE_NAME_MAX = 64
QUEUE_NAME_MAX = 80
TABLE_NAME_MAX = 255
_CONSOLE = {"aws": "console.aws.amazon.com", "aws-cn": "console.amazonaws.cn",
            "aws-us-gov": "console.amazonaws-us-gov.com"}


def events_role_name(machine_name: str) -> str:
    return f"{machine_name}-events"


def state_machine_role_name(machine_name: str) -> str:
    return f"{machine_name}-states"


def rule_name(prefix: str, key: str) -> str:
    return f"{prefix}-{key}"


def dead_letter_queue_name(prefix: str) -> str:
    return f"{prefix}-dead-letters"


def function_log_group(function_name: str) -> str:
    """Lambda's own log group name: creating it first lets us set its retention and scope the role to it."""
    return f"/aws/lambda/{function_name}"


def state_machine_log_group(machine_name: str) -> str:
    # The /aws/vendedlogs/ prefix keeps the CloudWatch Logs resource policy Step Functions needs small.
    return f"/aws/vendedlogs/states/{machine_name}"


def in_region(name: str, region: str | None) -> str:
    """The name of an account-wide resource (an IAM role, a dashboard) deployed for another region than the
    provider's: the region appended, so each region's copy is its own (None: the provider's region, as ever)."""
    return name if region is None else f"{name}-{region}"


def physical_names(prefix: str, stack: Stack, regions: tuple[str, ...] = ()) -> list[tuple[str, str, str, int]]:
    """(kind, what, name, AWS length limit) for every explicitly named resource; names of one kind share a
    namespace in AWS (IAM roles: the account), so they must also be unique within their kind. With `regions`,
    the account-wide names of every region's copy too (the longest region name decides whether they fit)."""
    base = _physical_names(prefix, stack)
    names = list(base)
    for region in regions:
        names += [(kind, f"{what} in {region}", in_region(name, region), limit)
                  for kind, what, name, limit in base if kind == "role"]
    return names


def _physical_names(prefix: str, stack: Stack) -> list[tuple[str, str, str, int]]:
    names = [("function", f"function {f.key}", f.name(prefix), LAMBDA_NAME_MAX) for f in stack.functions]
    names += [("role", f"role of function {f.key}", f.name(prefix), ROLE_NAME_MAX) for f in stack.functions]
    for machine in stack.state_machines:
        name = machine.name(prefix)
        names += [
            ("state machine", f"state machine {machine.key}", name, STATE_MACHINE_NAME_MAX),
            ("role", f"role of state machine {machine.key}", state_machine_role_name(name), ROLE_NAME_MAX),
            ("role", f"events role of state machine {machine.key}", events_role_name(name), ROLE_NAME_MAX),
        ]
    targets: tuple[Schedule | EventRule, ...] = (*stack.schedules, *stack.rules)
    names += [("rule", f"rule {r.key}", rule_name(prefix, r.key), RULE_NAME_MAX) for r in targets]
    names += [("table", f"table {t.key}", t.name(prefix), TABLE_NAME_MAX) for t in stack.tables]
    names.append(("queue", "dead-letter queue", dead_letter_queue_name(prefix), QUEUE_NAME_MAX))
    return names


def duplicate_names(prefix: str, stack: Stack) -> list[str]:
    """'rule sweep and rule sweep are both named asg-optimizer-sweep'-style clashes, empty when none."""
    seen: dict[tuple[str, str], str] = {}
    clashes = []
    for kind, what, name, _ in physical_names(prefix, stack):
        if (kind, name) in seen:
            clashes.append(f"{seen[kind, name]} and {what} are both named {name!r}")
        seen.setdefault((kind, name), what)
    return clashes


@dataclass(frozen=True)
class Scope:
    """Where the stack lives: partition, region, account and name prefix."""

    partition: str
    region: str
    account: str
    prefix: str

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (f"arn:{self.partition}:{service}:{self.region if region else ''}:"
                f"{self.account if account else ''}:{resource}")

    def function_arn(self, function_name: str) -> str:
        return self.arn("lambda", f"function:{function_name}")

    def state_machine_arn(self, machine_name: str) -> str:
        return self.arn("states", f"stateMachine:{machine_name}")

    def rule_arn(self, key: str) -> str:
        return self.arn("events", f"rule/{rule_name(self.prefix, key)}")

    def dead_letter_queue_arn(self) -> str:
        return self.arn("sqs", dead_letter_queue_name(self.prefix))

    def log_group_arn(self, group: str) -> str:
        return self.arn("logs", f"log-group:{group}")

    def log_streams_arn(self, group: str) -> str:
        return self.arn("logs", f"log-group:{group}:log-stream:*")

    def groups_arn(self) -> str:
        """Every Auto Scaling group of the account in this region (narrowed by tag conditions where used)."""
        return self.arn("autoscaling", "autoScalingGroup:*:autoScalingGroupName/*")

    def ec2_arn(self, resource_type: str, *, owned: bool = True) -> str:
        """`owned=False` for AMIs and snapshots, which may belong to another account (public or shared)."""
        return self.arn("ec2", f"{resource_type}/*", account=owned)

    def role_arn(self, pattern: str) -> str:
        return self.arn("iam", f"role/{pattern}", region=False)

    def console(self) -> str:
        return f"https://{self.region}.{_CONSOLE.get(self.partition, _CONSOLE['aws'])}"

    def executions_console_url(self, machine_arn: str) -> str:
        return f"{self.console()}/states/home?region={self.region}#/statemachines/view/{machine_arn}"

    def dashboard_console_url(self, dashboard: str) -> str:
        return f"{self.console()}/cloudwatch/home?region={self.region}#dashboards/dashboard/{dashboard}"
