"""The embedded AWS: moto with the ASL interpreter on, our stack deployed into it from the stack description.

    with EmbeddedAws() as aws:
        arn = aws.start_swap("web", "i-0123...", reason="manual")
        aws.wait(arn)

Everything (handlers, CLI, tests) talks to it through ordinary boto3 clients.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from moto import mock_aws
from moto.core.config import DefaultConfig
from moto.stepfunctions.parser.api import ExecutionStatus

from asg_optimizer import sessions
from asg_optimizer.local import (
    asl_interpreter,
    cloudwatch_model,
    ec2_lookups,
    iam_model,
    instance_type_catalog,
    metrics_sink,
    moto_costs,
    seam,
    sfn_integration,
    zone_balance,
)
from asg_optimizer.local.autoscaling_model import AutoScalingModel
from asg_optimizer.local.clock import Clock, RealClock
from asg_optimizer.local.commitments_model import CommitmentsModel
from asg_optimizer.local.dynamodb_model import BatchReadModel
from asg_optimizer.local.ec2_model import Ec2Model
from asg_optimizer.local.instance_lifecycle import InstanceLifecycleModel
from asg_optimizer.local.load_balancer_model import LoadBalancerModel
from asg_optimizer.local.mixed_instances_model import MixedInstancesModel
from asg_optimizer.local.pricing_api import PricingApiModel
from asg_optimizer.local.stepfunctions_model import StepFunctionsModel
from stack.description import (
    COMMITMENTS,
    DEFAULT_PREFIX,
    PAUSE_ALARMS,
    PAUSE_FAILURE_BUDGET,
    REPLACE,
    SAVINGS_PLAN_RESERVE_PER_HOUR,
    STACK,
    STATE_MACHINE_ARN_ENVIRONMENT,
    Function,
    Stack,
    Table,
)
from stack.render import render_state_machine
from tasks.aws import clock as clock_of_handlers
from tasks.aws.clients import reset_clients
from tasks.core.naming import execution_name
from tasks.core.pause import DEFAULT_FAILURE_BUDGET

REGION = "us-east-1"
MOTO_CONFIG: DefaultConfig = {"stepfunctions": {"execute_state_machine": True}}
LAMBDA_RUNTIME = "python3.12"
_ASSUME_LAMBDA = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
_ASSUME_STATES = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def local_environment(region: str = REGION) -> None:
    """Fake credentials and a region, so no call can reach a real account."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
    }.items():
        os.environ[key] = value
    # moto would load its ~900 public AMIs (with a volume and a snapshot each) into every EC2 backend it creates,
    # ~0.2 s of CPU per embedded AWS, and scan them on every launch; nothing here reads them (our fleets use AMI
    # ids of their own, and moto does not check that an AMI exists).
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "AsgOptimizer")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "asg-optimizer")
    # The interpreter logs every caught error and absent optional path; execution history carries them.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)


def _code_zip() -> bytes:
    """moto wants a code package; the handler runs in-process from the real tasks/ package instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "handlers run in-process from tasks/")
    return buffer.getvalue()


@dataclass
class Deployment:
    """What `deploy` created: ARNs by stack key."""

    function_arns: dict[str, str] = field(default_factory=dict)
    state_machine_arns: dict[str, str] = field(default_factory=dict)
    table_names: dict[str, str] = field(default_factory=dict)

    @property
    def replace_arn(self) -> str:
        return self.state_machine_arns[REPLACE]


def _role(iam: Any, name: str, trust: dict[str, Any]) -> dict[str, Any]:
    """The role, created once: IAM is account-wide, so a second region's deployment finds the first one's."""
    try:
        return dict(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust)))
    except iam.exceptions.EntityAlreadyExistsException:
        return dict(iam.get_role(RoleName=name))


def deploy(stack: Stack = STACK, prefix: str = DEFAULT_PREFIX, environment: dict[str, str] | None = None,
           region: str | None = None) -> Deployment:
    """Create the stack's functions and state machines with plain boto3 calls (works in-process or served), in
    `region` (default: the environment's)."""
    iam = boto3.client("iam", region_name=region)
    lam, sfn = boto3.client("lambda", region_name=region), boto3.client("stepfunctions", region_name=region)
    lambda_role = _role(iam, f"{prefix}-lambda", _ASSUME_LAMBDA)
    states_role = _role(iam, f"{prefix}-states", _ASSUME_STATES)
    deployment = Deployment()
    base = {"POWERTOOLS_SERVICE_NAME": "asg-optimizer", **(environment or {})}
    code = _code_zip()

    def create(function: Function, values: dict[str, str]) -> None:
        missing = [name for name in function.environment if name not in values]
        if missing:
            raise ValueError(f"function {function.key} reads {', '.join(missing)} but deploy has no value for it")
        env = {**base, **{name: values[name] for name in function.environment}}
        created = lam.create_function(
            FunctionName=function.name(prefix), Runtime=LAMBDA_RUNTIME, Role=lambda_role["Role"]["Arn"],
            Handler=function.handler, Code={"ZipFile": code}, Description=function.description,
            Timeout=function.timeout, MemorySize=function.memory, Environment={"Variables": env},
        )
        deployment.function_arns[function.key] = created["FunctionArn"]

    # The stack settings' defaults (infra/config.py), unless the caller's environment sets them.
    values = {PAUSE_ALARMS: "", PAUSE_FAILURE_BUDGET: str(DEFAULT_FAILURE_BUDGET), COMMITMENTS: "use",
              SAVINGS_PLAN_RESERVE_PER_HOUR: "0", **base}
    for table in stack.tables:
        deployment.table_names[table.key] = values[table.environment] = create_table(table, prefix, region)
    # Functions that start executions need the state machine ARN, so they come after the state machines
    # (which reference only the step functions).
    late = [f for f in stack.functions if set(f.environment) & set(STATE_MACHINE_ARN_ENVIRONMENT)]
    for function in stack.functions:
        if function not in late:
            create(function, values)
    for machine in stack.state_machines:  # in order: a machine's late functions need only earlier machines' ARNs
        for function in [f for f in late if f.key in machine.substitutions.values()]:
            create(function, values)
            late.remove(function)
        created = sfn.create_state_machine(
            name=machine.name(prefix), type="STANDARD", roleArn=states_role["Role"]["Arn"],
            definition=render_state_machine(machine, deployment.function_arns, deployment.state_machine_arns),
        )
        deployment.state_machine_arns[machine.key] = created["stateMachineArn"]
        values |= {name: created["stateMachineArn"] for name, key in STATE_MACHINE_ARN_ENVIRONMENT.items()
                   if key == machine.key}
    for function in late:
        create(function, values)
    return deployment


def create_table(table: Table, prefix: str, region: str | None = None) -> str:
    """The DynamoDB table as the Pulumi program makes it: on-demand billing, one string key, TTL on."""
    dynamodb, name = boto3.client("dynamodb", region_name=region), table.name(prefix)
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": table.partition_key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": table.partition_key, "AttributeType": "S"}],
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute}
    )
    return name


def _stop_running_executions() -> None:
    """Abort what still runs: an execution parked in a Wait (a scaled one ends within the suite) lives in a thread
    of its own and would otherwise wake in the next embedded AWS of this process and act on its state."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    now = datetime.now(UTC)
    for account in list(stepfunctions_parser_backends):
        for backend in list(stepfunctions_parser_backends[account].values()):
            for execution in backend._get_executions(ExecutionStatus.RUNNING):
                execution.stop(stop_date=now, error=None, cause="the embedded AWS stopped")


class EmbeddedAws:
    """moto in-process with our models and the stack deployed; a context manager."""

    def __init__(self, *, boot_delay_seconds: float = 2.0, region: str = REGION,
                 environment: dict[str, str] | None = None, clock: Clock | None = None,
                 retry_scale: float = 1.0, wait_scale: float = 1.0,
                 list_executions_lag_seconds: float = 0.0, notice_clock: Clock | None = None) -> None:
        """`environment`: extra variables for every function (e.g. SPOT_NOTICE_SECONDS for a shorter notice).
        `clock`: what load-balancer health, draining and lifecycle-hook timeouts are timed by (AWS seconds).
        `notice_clock`: what the end of a spot's interruption notice (EC2's reclaim) and the handlers' release
        deadline are timed by (`Clock.epoch`; default the wall clock): a ManualClock nobody moves keeps a slow
        machine from reaching either.
        `retry_scale`: how long the state machines' retry back-offs really sleep, as a fraction (tests: small).
        `wait_scale`: how long their Wait states really sleep, as a fraction (tests: small; the timing given is
        checked as deployed, so the 2 s minimum poll interval holds).
        `list_executions_lag_seconds`: how long a new execution stays out of ListExecutions (eventual
        consistency)."""
        self.region = region
        self.retry_scale = retry_scale
        self.wait_scale = wait_scale
        self.environment = dict(environment or {})
        self.pricing_api = PricingApiModel()
        self.clock = clock or RealClock()
        self.notice_clock = notice_clock or RealClock()
        self.ec2_model = Ec2Model(boot_delay_seconds=boot_delay_seconds, clock=self.notice_clock)
        self.ec2_model.market.region = region
        self.autoscaling_model = AutoScalingModel()
        self.load_balancers = LoadBalancerModel(clock=self.clock)
        self.lifecycle = InstanceLifecycleModel(self.load_balancers, clock=self.clock)
        self.mixed_instances = MixedInstancesModel()
        self.commitments_model = CommitmentsModel(region=region)
        self.batch_reads = BatchReadModel()  # DynamoDB BatchGetItem's partial answers (UnprocessedKeys)
        self.rebalanced: dict[str, str | None] = {}  # spot -> the replacement Capacity Rebalancing launched
        self.stepfunctions_model = StepFunctionsModel(list_executions_lag_seconds)
        self._mock = mock_aws(config=MOTO_CONFIG)
        self.deployment = Deployment()
        self._endpoints: dict[str, str] = {}
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    def __enter__(self) -> EmbeddedAws:
        # An exported AWS_ENDPOINT_URL (say, for `local serve`) would send this embedded AWS's calls elsewhere.
        self._endpoints = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_ENDPOINT_URL")}
        local_environment(self.region)
        self._mock.start()
        try:
            # moto blanks boto3's default session (the handlers'): a new one on the shared loader, not a cold one.
            boto3.DEFAULT_SESSION = sessions.session()
            self._session = sessions.session(region_name=self.region)
            moto_costs.install()
            asl_interpreter.install()
            asl_interpreter.set_retry_scale(self.retry_scale)
            asl_interpreter.set_wait_scale(self.wait_scale)
            seam.install()
            self.ec2_model.install()
            self.autoscaling_model.install()
            self.stepfunctions_model.install()
            zone_balance.install()
            self.mixed_instances.install()  # after zone_balance: each override's launch is spread over zones
            self.load_balancers.install()
            self.lifecycle.install()  # outermost launch patch: it sees every instance the group launched
            instance_type_catalog.install()
            ec2_lookups.install()
            iam_model.install()
            cloudwatch_model.install()
            sfn_integration.install()
            metrics_sink.install()
            self.pricing_api.install()
            self.commitments_model.install()
            self.batch_reads.install()
            reset_clients()
            clock_of_handlers.use(self.notice_clock.epoch)
            self.deployment = deploy(environment=self.environment)
        except BaseException:  # a half-started embedded AWS must not leave moto's mock and our patches on
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        _stop_running_executions()
        metrics_sink.uninstall()
        cloudwatch_model.uninstall()
        sfn_integration.uninstall()
        iam_model.uninstall()  # before the models it wrapped (reverse order of install)
        self.ec2_model.uninstall()
        self.autoscaling_model.uninstall()
        self.lifecycle.uninstall()
        self.load_balancers.uninstall()
        self.mixed_instances.uninstall()
        self.stepfunctions_model.uninstall()
        zone_balance.uninstall()
        instance_type_catalog.uninstall()
        ec2_lookups.uninstall()
        self.batch_reads.uninstall()
        self.commitments_model.uninstall()  # before the Pricing API: both wrap moto's request stubber, in this order
        self.pricing_api.uninstall()
        seam.uninstall()
        asl_interpreter.uninstall()
        moto_costs.uninstall()
        self._mock.stop()
        os.environ.update(self._endpoints)
        reset_clients()
        clock_of_handlers.use(None)
        self._clients.clear()

    def client(self, service: str) -> Any:
        """The harness's client, made once per service on a session of its own: calls counted (or faults
        injected) on the default session are the task functions'."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(service)
            return self._clients[service]

    def start_swap(self, asg_name: str, instance_id: str, *, reason: str = "manual",
                   timing: dict[str, int] | None = None, name: str | None = None) -> str:
        """Start one replacement execution, named as the scanner names them."""
        payload: dict[str, Any] = {"asg_name": asg_name, "instance_id": instance_id, "reason": reason}
        if timing is not None:
            payload["timing"] = timing
        name = name or execution_name(asg_name, instance_id, datetime.now(UTC))
        return self.client("stepfunctions").start_execution(
            stateMachineArn=self.deployment.replace_arn, name=name, input=json.dumps(payload)
        )["executionArn"]

    def put_alarm(self, name: str, state: str = "OK") -> None:
        """A metric alarm (on a metric nothing publishes) in `state`, for the pause and the rollout gate."""
        cloudwatch = self.client("cloudwatch")
        cloudwatch.put_metric_alarm(
            AlarmName=name, Namespace="Demo", MetricName=name, Statistic="Sum", Period=60, EvaluationPeriods=1,
            Threshold=1.0, ComparisonOperator="GreaterThanOrEqualToThreshold")
        self.set_alarm(name, state)

    def set_alarm(self, name: str, state: str) -> None:
        """SetAlarmState, as an operator (or CloudWatch itself) would."""
        self.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"set to {state}")

    def epoch(self) -> float:
        """The Unix time the handlers decide by (`notice_clock`'s epoch): when an event says it was sent."""
        return self.notice_clock.epoch()

    def wait(self, execution_arn: str, timeout: float = 120.0) -> dict[str, Any]:
        """Block until the execution ends; returns DescribeExecution."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still RUNNING after {timeout}s")
            time.sleep(0.1)
