"""`SpotOptimizer`: the whole deployment as one Pulumi ComponentResource, built by iterating the ONE stack
description (stack.description.STACK) that the embedded AWS deploys too, so the two cannot drift.

Every function, state machine, schedule and rule comes from the stack description; nothing here lists them.
The policies, environments and dashboard are drawn (and validated) first by infra.blueprint; this module only
creates resources from that blueprint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import iam
from infra.blueprint import blueprint_stack
from infra.config import Settings
from infra.dashboard import failed_executions_queries
from infra.names import (
    Scope,
    dead_letter_queue_name,
    events_role_name,
    function_log_group,
    in_region,
    rule_name,
    state_machine_log_group,
    state_machine_role_name,
)
from stack.description import REPLACE, ROOT, STACK, Function, Stack, StateMachine, Table
from stack.render import render_state_machine

TASKS = ROOT / "tasks"
SCANNER = "scanner"
DEAD_LETTER_RETENTION = 14 * 86400  # SQS maximum: two weeks to look at an undelivered event
# EventBridge retries a failed delivery for a day by default; a stale scan or launch event is worthless.
TARGET_MAX_EVENT_AGE = 3600
TARGET_MAX_RETRIES = 4


def code_archive(tasks: Path = TASKS) -> pulumi.AssetArchive:
    """The Lambda package: the tasks/ tree (sources and data files) at the archive root, so `tasks.x.handler`
    imports; no bytecode caches. boto3 is in the runtime and Powertools comes from its layer."""
    files = sorted(p for p in tasks.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"))
    return pulumi.AssetArchive({
        f"tasks/{p.relative_to(tasks).as_posix()}": pulumi.FileAsset(str(p)) for p in files
    })


def aws_scope(prefix: str) -> Scope:
    """Partition, region and account of the provider the stack deploys with."""
    return Scope(partition=aws.get_partition().partition, region=aws.get_region().region,
                 account=aws.get_caller_identity().account_id, prefix=prefix)


def manual_trigger_command(machine_arn: str, region: str) -> str:
    """Start one swap by hand, named like the scanner's executions (so Validate sees it as in flight)."""
    return (
        "ASG=my-asg INSTANCE=i-0123456789abcdef0; "
        f"aws stepfunctions start-execution --region {region} --state-machine-arn {machine_arn} "
        '--name "$ASG-$INSTANCE-$(date -u +%Y%m%dT%H%M%S)" '
        '--input "{\\"asg_name\\": \\"$ASG\\", \\"instance_id\\": \\"$INSTANCE\\", \\"reason\\": \\"manual\\"}"'
    )


class SpotOptimizer(pulumi.ComponentResource):
    """Functions, state machines, tables, schedules, event rules, DLQ, dashboard and alarms of asg-optimizer."""

    def __init__(self, name: str, settings: Settings, *, scope: Scope | None = None, stack: Stack = STACK,
                 other_region: bool = False, opts: pulumi.ResourceOptions | None = None) -> None:
        """`other_region`: this copy serves another region than the provider's (`opts` carries that region's
        provider): its logical names start with the region and its account-wide names (IAM roles, the dashboard)
        end with it, so the copies of one stack never share a name."""
        scope = scope or aws_scope(settings.prefix)
        blueprint = blueprint_stack(settings, scope, stack)  # raises before anything is registered
        super().__init__("asg-optimizer:index:SpotOptimizer", name, None, opts)
        self.settings, self.stack, self.scope, self.blueprint = settings, stack, scope, blueprint
        self.qualifier = scope.region if other_region else None
        self._child = pulumi.ResourceOptions(parent=self)

        self.dead_letter_queue = aws.sqs.Queue(
            self._n("dead-letters"), name=dead_letter_queue_name(settings.prefix),
            message_retention_seconds=DEAD_LETTER_RETENTION, sqs_managed_sse_enabled=True, opts=self._child)
        if blueprint.dead_letter_queue_policy:
            aws.sqs.QueuePolicy(self._n("dead-letters"), queue_url=self.dead_letter_queue.url,
                                policy=iam.dumps(blueprint.dead_letter_queue_policy), opts=self._child)
        self.tables = {t.key: self._table(t) for t in stack.tables}
        code = code_archive()
        self.functions = {f.key: self._function(f, code) for f in stack.functions}
        self.state_machines = {m.key: self._state_machine(m) for m in stack.state_machines}
        self.events_roles = {key: self._events_role(stack.state_machine(key)) for key in blueprint.events_policies}
        self.rules = {s.key: self._rule(s.key, s.function, s.description,
                                        schedule_expression=settings.schedules[s.key]) for s in stack.schedules}
        self.rules |= {r.key: self._rule(r.key, r.function, r.description,
                                         event_pattern=json.dumps(r.pattern, sort_keys=True)) for r in stack.rules}
        self._observability()
        self.outputs = self._outputs()
        self.register_outputs(self.outputs)

    def _n(self, logical: str) -> str:
        """A child's logical name: Pulumi URNs hold the parent's type, not its name, so each region's copy
        prefixes its own (the provider's region keeps the names it always had)."""
        return logical if self.qualifier is None else f"{self.qualifier}-{logical}"

    def _role(self, logical: str, role_name: str, trust: dict[str, Any], policy: dict[str, Any]
              ) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        logical, role_name = self._n(logical), in_region(role_name, self.qualifier)  # roles are account-wide
        role = aws.iam.Role(logical, name=role_name, assume_role_policy=iam.dumps(trust), opts=self._child)
        inline = aws.iam.RolePolicy(logical, role=role.id, name="least-privilege", policy=iam.dumps(policy),
                                    opts=self._child)
        return role, inline

    def _table(self, table: Table) -> aws.dynamodb.Table:
        """On-demand billing, one string key, expiry by TTL (the embedded AWS creates it the same way)."""
        return aws.dynamodb.Table(
            self._n(f"{table.key}-table"), name=table.name(self.settings.prefix), billing_mode="PAY_PER_REQUEST",
            hash_key=table.partition_key, attributes=[{"name": table.partition_key, "type": "S"}],
            ttl={"attribute_name": table.ttl_attribute, "enabled": True}, opts=self._child)

    def _function(self, function: Function, code: pulumi.AssetArchive) -> aws.lambda_.Function:
        drawn = self.blueprint.functions[function.key]
        tables = [self.tables[t.key] for t in self.stack.tables if t.environment in function.environment]
        name = function.name(self.settings.prefix)
        logs = aws.cloudwatch.LogGroup(self._n(f"{function.key}-function-logs"), name=function_log_group(name),
                                       retention_in_days=self.settings.log_retention_days, opts=self._child)
        role, policy = self._role(f"{function.key}-function-role", name, iam.assume_role("lambda.amazonaws.com"),
                                  drawn.policy)
        return aws.lambda_.Function(
            self._n(function.key),
            name=name,
            description=function.description,
            role=role.arn,
            runtime=self.settings.runtime,
            architectures=[self.settings.architecture],
            handler=function.handler,
            code=code,
            layers=[self.blueprint.layer_arn],
            timeout=function.timeout,
            memory_size=self.settings.memory_for(function.memory),
            environment={"variables": drawn.environment},
            tracing_config={"mode": "Active"},
            # Asynchronous (EventBridge) invocations that still fail after Lambda's retries land in the DLQ.
            dead_letter_config={"target_arn": self.dead_letter_queue.arn} if drawn.event_target else None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs, policy, *tables]),
        )

    def _state_machine(self, machine: StateMachine) -> aws.sfn.StateMachine:
        name = machine.name(self.settings.prefix)
        logs = aws.cloudwatch.LogGroup(self._n(f"{machine.key}-states-logs"), name=state_machine_log_group(name),
                                       retention_in_days=self.settings.log_retention_days, opts=self._child)
        trust = iam.assume_role("states.amazonaws.com", account=self.scope.account,
                                source_arn=self.scope.state_machine_arn(name))
        role, policy = self._role(f"{machine.key}-states-role", state_machine_role_name(name), trust,
                                  self.blueprint.state_machine_policies[machine.key])
        arns = {key: self.functions[key].arn for key in sorted(set(machine.substitutions.values()))}
        machine_arns = {key: self.scope.state_machine_arn(self.stack.state_machine(key).name(self.settings.prefix))
                        for key in machine.machines.values()}  # deterministic names: no cycle, no wait
        definition = pulumi.Output.all(**arns).apply(
            lambda resolved: render_state_machine(machine, resolved, machine_arns))
        return aws.sfn.StateMachine(
            self._n(machine.key),
            name=name,
            type="STANDARD",
            role_arn=role.arn,
            definition=definition,
            logging_configuration={"level": "ALL", "include_execution_data": True,
                                   "log_destination": logs.arn.apply(lambda arn: f"{arn}:*")},
            tracing_configuration={"enabled": True},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

    def _events_role(self, machine: StateMachine) -> aws.iam.Role:
        """The role EventBridge assumes to start a state machine that a rule or schedule targets directly."""
        trust = iam.assume_role("events.amazonaws.com", account=self.scope.account)
        role, _ = self._role(f"{machine.key}-events-role", events_role_name(machine.name(self.settings.prefix)),
                             trust, self.blueprint.events_policies[machine.key])
        return role

    def _rule(self, key: str, target: str, description: str, **trigger: Any) -> aws.cloudwatch.EventRule:
        rule = aws.cloudwatch.EventRule(self._n(key), name=rule_name(self.settings.prefix, key),
                                        description=description, opts=self._child, **trigger)
        delivery: dict[str, Any] = {
            "rule": rule.name,
            "dead_letter_config": {"arn": self.dead_letter_queue.arn},
            "retry_policy": {"maximum_event_age_in_seconds": TARGET_MAX_EVENT_AGE,
                             "maximum_retry_attempts": TARGET_MAX_RETRIES},
        }
        if target in self.functions:
            function = self.functions[target]
            permission = aws.lambda_.Permission(
                self._n(f"{key}-invoke"), action="lambda:InvokeFunction", function=function.name,
                principal="events.amazonaws.com", source_arn=rule.arn, opts=self._child)
            aws.cloudwatch.EventTarget(self._n(key), arn=function.arn, **delivery,
                                       opts=pulumi.ResourceOptions(parent=self, depends_on=[permission]))
        else:
            aws.cloudwatch.EventTarget(self._n(key), arn=self.state_machines[target].arn,
                                       role_arn=self.events_roles[target].arn, **delivery, opts=self._child)
        return rule

    def _observability(self) -> None:
        prefix = self.settings.prefix
        self.alarm_topic: aws.sns.Topic | None = None
        if self.settings.alarm_email:
            self.alarm_topic = aws.sns.Topic(self._n("alarms"), name=f"{prefix}-alarms", opts=self._child)
            aws.sns.TopicSubscription(self._n("alarm-email"), topic=self.alarm_topic.arn, protocol="email",
                                      endpoint=self.settings.alarm_email, opts=self._child)
        actions = [self.alarm_topic.arn] if self.alarm_topic else []
        # Dashboards are account-wide: another region's copy is named after its region.
        self.dashboard = aws.cloudwatch.Dashboard(self._n("dashboard"), dashboard_name=self.dashboard_name,
                                                  dashboard_body=self.blueprint.dashboard_body, opts=self._child)
        for machine in self.stack.state_machines:
            name = machine.name(prefix)
            aws.cloudwatch.MetricAlarm(
                self._n(f"{machine.key}-failed"), name=f"{name}-failed",
                alarm_description=f"Executions of {name} failed or timed out: see its executions list",
                comparison_operator="GreaterThanOrEqualToThreshold", threshold=1, evaluation_periods=1,
                treat_missing_data="notBreaching",
                metric_queries=failed_executions_queries(self.scope.state_machine_arn(name)),  # type: ignore[arg-type]
                alarm_actions=actions, ok_actions=actions, opts=self._child)
        aws.cloudwatch.MetricAlarm(
            self._n("dead-letters"), name=f"{prefix}-dead-letters",
            alarm_description="An event or invocation could not be delivered: see the dead-letter queue",
            namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": dead_letter_queue_name(prefix)}, statistic="Maximum", period=300,
            evaluation_periods=1, threshold=1, comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching", alarm_actions=actions, opts=self._child)

    @property
    def dashboard_name(self) -> str:
        return in_region(self.settings.prefix, self.qualifier)

    def _outputs(self) -> dict[str, Any]:
        arn = self.scope.state_machine_arn(self.stack.state_machine(REPLACE).name(self.settings.prefix))
        outputs: dict[str, Any] = {
            "stateMachineArn": self.state_machines[REPLACE].arn,
            "stateMachineName": self.state_machines[REPLACE].name,
            "executionsConsoleUrl": self.scope.executions_console_url(arn),
            "dashboardUrl": self.scope.dashboard_console_url(self.dashboard_name),
            "deadLetterQueueUrl": self.dead_letter_queue.url,
            "manualTriggerCommand": manual_trigger_command(arn, self.scope.region),
            "functionNames": {key: f.name for key, f in self.functions.items()},
        }
        if SCANNER in self.functions:
            outputs["scannerFunctionName"] = self.functions[SCANNER].name
        return outputs


# The provider settings (stack config `aws:<key>`) an explicit provider does not read by itself but each region's
# provider must share with the stack's own: the same account, credentials and tags in every region.
PROVIDER_SETTINGS = {"profile": "profile", "assumeRoles": "assume_roles", "allowedAccountIds": "allowed_account_ids",
                     "forbiddenAccountIds": "forbidden_account_ids", "defaultTags": "default_tags",
                     "sharedConfigFiles": "shared_config_files", "sharedCredentialsFiles": "shared_credentials_files"}


def region_provider(region: str) -> aws.Provider:
    """An explicit AWS provider for `region`, with the stack's own provider settings (an explicit provider does
    not read the stack's `aws:` config)."""
    config = pulumi.Config("aws")
    shared: dict[str, Any] = {}
    for key, argument in PROVIDER_SETTINGS.items():
        value = config.get(key)
        if value is None:
            continue
        try:
            shared[argument] = json.loads(value) if key != "profile" else value
        except json.JSONDecodeError:
            shared[argument] = value
    return aws.Provider(f"aws-{region}", region=region, **shared)


def deploy(settings: Settings, *, home: Scope | None = None, stack: Stack = STACK) -> dict[str, SpotOptimizer]:
    """The optimizer in each region of `settings.regions` (default: the provider's), by region. The provider's
    region is the stack's default provider and keeps the names it always had; every other region gets its own
    provider and region-qualified names. Every region is planned (and so validated) before anything is
    registered."""
    home = home or aws_scope(settings.prefix)
    scopes = {region: Scope(home.partition, region, home.account, home.prefix)
              for region in settings.regions_for(home.region)}
    for scope in scopes.values():
        blueprint_stack(settings, scope, stack)
    deployed = {}
    for region, scope in scopes.items():
        if region == home.region:
            deployed[region] = SpotOptimizer("asg-optimizer", settings, scope=scope, stack=stack)
        else:
            deployed[region] = SpotOptimizer(
                f"asg-optimizer-{region}", settings, scope=scope, stack=stack, other_region=True,
                opts=pulumi.ResourceOptions(providers=[region_provider(region)]))
    return deployed


def stack_outputs(deployed: dict[str, SpotOptimizer], home_region: str) -> dict[str, Any]:
    """The provider region's outputs as ever (`stateMachineArn`, ...); with any other region, `regions` too:
    region -> that region's outputs (every region's, the provider's included)."""
    outputs: dict[str, Any] = dict(deployed[home_region].outputs) if home_region in deployed else {}
    if set(deployed) != {home_region}:
        outputs["regions"] = {region: optimizer.outputs for region, optimizer in deployed.items()}
    return outputs
