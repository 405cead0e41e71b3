"""Least-privilege IAM: one policy per function, derived from the AWS calls its handler makes (tasks/*.py).

Policies are plain dicts over deterministic ARNs (infra/names.py), dumped with json.dumps, so tests read them
directly: every function in the stack must have an entry in POLICIES, and the actions of each entry are checked
against the boto3 calls found in the handler's code, both ways, so policy and code cannot drift.

Scoping rules (issue #4):
- no `*` in any action;
- `Resource: "*"` only for actions without resource-level permissions (NO_RESOURCE_LEVEL says why for each),
  and then narrowed to this region with `aws:RequestedRegion`;
- group-changing calls only on groups tagged `AsgOptimiser=true`; instance termination only on instances we
  tagged at launch; RunInstances only for spot instances carrying our tags in the request; tag writes only of
  our own `AsgOptimiser:*` keys; `iam:PassRole` only to EC2 and only for roles matching a configured pattern.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from infra.names import Scope, function_log_group
from stack.description import COOLDOWN_TABLE, INTERRUPTION, REPLACE, ROLLOUT, Function, Stack, StateMachine
from tasks.aws.clients import PRICING_REGION
from tasks.core.swap_events import SOURCE as SWAP_EVENT_SOURCE
from tasks.core.tags import EXECUTION, OPT_IN, OPT_IN_VALUE, REPLACES

Statement = dict[str, Any]
VERSION = "2012-10-17"

# Actions IAM cannot scope to a resource (the service authorizes them on "*" only), with the reason.
NO_RESOURCE_LEVEL: dict[str, str] = {
    "autoscaling:DescribeAutoScalingGroups": "Auto Scaling Describe* calls have no resource-level permissions",
    "autoscaling:DescribeInstanceRefreshes": "Auto Scaling Describe* calls have no resource-level permissions",
    "autoscaling:DescribeAutoScalingInstances": "Auto Scaling Describe* calls have no resource-level permissions",
    "autoscaling:DescribeLifecycleHooks": "Auto Scaling Describe* calls have no resource-level permissions",
    "elasticloadbalancing:DescribeTargetHealth": "Elastic Load Balancing Describe* calls have no resource-level "
                                                 "permissions",
    "elasticloadbalancing:DescribeInstanceHealth": "Elastic Load Balancing Describe* calls have no resource-level "
                                                   "permissions",
    "elasticloadbalancing:DescribeTargetGroupAttributes": "Elastic Load Balancing Describe* calls have no "
                                                          "resource-level permissions",
    "elasticloadbalancing:DescribeLoadBalancerAttributes": "Elastic Load Balancing Describe* calls have no "
                                                           "resource-level permissions",
    "ec2:DescribeInstances": "EC2 Describe* calls have no resource-level permissions",
    "ec2:DescribeInstanceStatus": "EC2 Describe* calls have no resource-level permissions",
    "ec2:DescribeInstanceTypes": "EC2 Describe* calls have no resource-level permissions",
    "ec2:DescribeLaunchTemplateVersions": "EC2 Describe* calls have no resource-level permissions",
    "ec2:DescribeSpotPriceHistory": "EC2 Describe* calls have no resource-level permissions",
    "ec2:DescribeReservedInstances": "EC2 Describe* calls have no resource-level permissions",
    "cloudwatch:GetMetricData": "CloudWatch GetMetricData has no resource types",
    "pricing:GetProducts": "the Price List API has no resource types",
    "xray:PutTraceSegments": "X-Ray trace ingestion has no resource type",
    "xray:PutTelemetryRecords": "X-Ray trace ingestion has no resource type",
    "xray:GetSamplingRules": "X-Ray sampling calls have no resource type",
    "xray:GetSamplingTargets": "X-Ray sampling calls have no resource type",
    "logs:CreateLogDelivery": "CloudWatch Logs vended-log delivery calls (Step Functions logging) take no resource",
    "logs:GetLogDelivery": "CloudWatch Logs vended-log delivery calls (Step Functions logging) take no resource",
    "logs:UpdateLogDelivery": "CloudWatch Logs vended-log delivery calls (Step Functions logging) take no resource",
    "logs:DeleteLogDelivery": "CloudWatch Logs vended-log delivery calls (Step Functions logging) take no resource",
    "logs:ListLogDeliveries": "CloudWatch Logs vended-log delivery calls (Step Functions logging) take no resource",
    "logs:PutResourcePolicy": "CloudWatch Logs resource policies are account-wide, not per log group",
    "logs:DescribeResourcePolicies": "CloudWatch Logs resource policies are account-wide, not per log group",
    "logs:DescribeLogGroups": "DescribeLogGroups lists the account's groups; Step Functions calls it for logging",
}

# Actions a call needs beyond its own: tagging at launch, passing the template's instance role, and the spot
# service-linked role EC2 creates on the account's first spot launch.
# An `instant` CreateFleet launches through RunInstances authorized as the caller (the template's resources are
# checked on the RunInstances statement), so it implies everything RunInstances does. Volumes under a customer
# managed KMS key need the key too (only when kmsKeyArns is set).
KMS_FOR_VOLUMES = ("kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext",
                   "kms:ReEncryptFrom", "kms:ReEncryptTo")
IMPLIED_BY: dict[str, tuple[str, ...]] = {
    "ec2:RunInstances": ("ec2:CreateTags", "iam:PassRole", "iam:CreateServiceLinkedRole", *KMS_FOR_VOLUMES),
    "ec2:CreateFleet": ("ec2:RunInstances", "ec2:CreateTags", "iam:PassRole", "iam:CreateServiceLinkedRole",
                        *KMS_FOR_VOLUMES),
}
# What every function's runtime needs (logs, X-Ray tracing) and what an event target's DLQ needs.
RUNTIME_ACTIONS = frozenset(
    {"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords",
     "sqs:SendMessage"}
)


class MissingPolicy(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Context:
    """What a policy is built from: where the stack lives, the stack itself, and the PassRole pattern."""

    scope: Scope
    stack: Stack
    instance_role_pattern: str = "*"
    kms_key_arns: tuple[str, ...] = ()  # keys of encrypted volumes or AMIs the launcher's templates use

    def machine_arn(self, key: str) -> str:
        return self.scope.state_machine_arn(self.stack.state_machine(key).name(self.scope.prefix))

    def function_arn(self, key: str) -> str:
        return self.scope.function_arn(self.stack.function(key).name(self.scope.prefix))

    def table_arn(self, environment: str) -> str:
        """The table whose name functions read from `environment`."""
        table = next(t for t in self.stack.tables if t.environment == environment)
        return self.scope.arn("dynamodb", f"table/{table.name(self.scope.prefix)}")

    @property
    def in_region(self) -> dict[str, dict[str, str]]:
        return {"StringEquals": {"aws:RequestedRegion": self.scope.region}}


def allow(sid: str, actions: Iterable[str], resources: str | list[str],
          condition: dict[str, Any] | None = None) -> Statement:
    statement: Statement = {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)), "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def unscoped(ctx: Context, sid: str, *actions: str, region: str | None = None) -> Statement:
    """Resource "*" for calls IAM cannot scope, limited to one region (the stack's unless a service answers
    elsewhere); refuses an action that could be scoped."""
    scopable = [a for a in actions if a not in NO_RESOURCE_LEVEL]
    if scopable:
        raise ValueError(f"{', '.join(scopable)} support(s) resource-level permissions: scope them, not '*'")
    return allow(sid, actions, "*", {"StringEquals": {"aws:RequestedRegion": region or ctx.scope.region}})


def commitments(ctx: Context) -> list[Statement]:
    """Read the account's commitments (tasks/aws/commitments.py): active RIs, active Savings Plans and their rates,
    every running instance, and on-demand prices to rank the usage the plans cover."""
    return [
        unscoped(ctx, "DescribeCommitmentsAndUsage", "ec2:DescribeReservedInstances", "ec2:DescribeInstances",
                 "ec2:DescribeSpotPriceHistory"),
        allow("SavingsPlansAndRates", ["savingsplans:DescribeSavingsPlans", "savingsplans:DescribeSavingsPlanRates"],
              ctx.scope.arn("savingsplans", "savingsplan/*", region=False)),
        prices(ctx),
    ]


def prices(ctx: Context) -> Statement:
    """The Price List API answers in us-east-1 only (tasks.aws.clients.PRICING_REGION), whatever the stack's region."""
    return unscoped(ctx, "OnDemandPrices", "pricing:GetProducts", region=PRICING_REGION)


def pause_signals(ctx: Context) -> list[Statement]:
    """This region's metric alarms (their names come from stack settings, group tags and rollout inputs, so not
    known at deploy; DescribeAlarms is read-only) and the failed swaps' metrics (GetMetricData, read-only)."""
    return [allow("PauseAlarms", ["cloudwatch:DescribeAlarms"], ctx.scope.arn("cloudwatch", "alarm:*")),
            unscoped(ctx, "FailedSwapMetrics", "cloudwatch:GetMetricData")]


def pause_reads(ctx: Context, *records: str) -> list[Statement]:
    """The fleet-wide pause (tasks/aws/pause_state.py): the alarms, the failed swaps' metrics and the pause record
    (and any other `records` key patterns the function reads, e.g. a rollout's cancel request)."""
    return [
        *pause_signals(ctx),
        allow("PauseRecord", ["dynamodb:GetItem"], ctx.table_arn(COOLDOWN_TABLE),
              {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["pause#*", *records]}}),
    ]


def child_executions(ctx: Context, machine: str) -> list[Statement]:
    """A `.sync:2` StartExecution task (AWS's documented policy for it): start the child machine's executions,
    follow and stop them, and the managed EventBridge rule through which Step Functions learns they ended."""
    name = ctx.stack.state_machine(machine).name(ctx.scope.prefix)
    return [
        allow("StartChildren", ["states:StartExecution"], ctx.machine_arn(machine)),
        allow("FollowChildren", ["states:DescribeExecution", "states:StopExecution"],
              ctx.scope.arn("states", f"execution:{name}:*")),
        allow("ChildrenEndedRule", ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
              ctx.scope.arn("events", "rule/StepFunctionsGetEventsForStepFunctionsExecutionRule")),
    ]


def opted_in_groups(ctx: Context, sid: str, *actions: str) -> Statement:
    """Change only groups carrying the opt-in tag."""
    return allow(sid, actions, ctx.scope.groups_arn(),
                 {"StringEquals": {f"autoscaling:ResourceTag/{OPT_IN}": OPT_IN_VALUE}})


def launch_spots(ctx: Context) -> list[Statement]:
    """CreateFleet `instant` from the group's launch template (RunInstances is authorized too: the fleet launches
    through it as the caller). The instance only with our tags in the request; the other resources a launch
    touches (the template, its AMI, subnet, security groups, the fleet itself...) belong to the user's groups or
    are untagged, so they cannot be conditioned on our tags."""
    s = ctx.scope
    launch = ["ec2:CreateFleet", "ec2:RunInstances"]
    return [
        allow("LaunchTaggedInstances", launch, s.ec2_arn("instance"), {
            "Null": {f"aws:RequestTag/{REPLACES}": "false", f"aws:RequestTag/{EXECUTION}": "false"},
        }),
        allow("LaunchFromGroupTemplates", launch, [
            s.ec2_arn("fleet"), s.ec2_arn("image", owned=False), s.ec2_arn("key-pair"),
            s.ec2_arn("launch-template"), s.ec2_arn("network-interface"), s.ec2_arn("placement-group"),
            s.ec2_arn("security-group"), s.ec2_arn("snapshot", owned=False), s.ec2_arn("spot-instances-request"),
            s.ec2_arn("subnet"), s.ec2_arn("volume"),
        ]),
        allow("TagOnLaunchOnly", ["ec2:CreateTags"], [
            s.ec2_arn("fleet"), s.ec2_arn("instance"), s.ec2_arn("network-interface"),
            s.ec2_arn("spot-instances-request"), s.ec2_arn("volume"),
        ], {"StringEquals": {"ec2:CreateAction": ["CreateFleet", "RunInstances"]}}),
        allow("PassInstanceProfileRoleToEc2", ["iam:PassRole"], s.role_arn(ctx.instance_role_pattern),
              {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
        allow("CreateSpotServiceLinkedRole", ["iam:CreateServiceLinkedRole"],
              s.role_arn("aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"),
              {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}),
        *encrypted_volumes(ctx),
    ]


def encrypted_volumes(ctx: Context) -> list[Statement]:
    """A launch whose template (or AMI) has volumes under a customer managed KMS key runs as the caller: EC2
    decrypts the snapshot and creates the volume's grant on its behalf. Only the configured keys, and the grant only
    for an AWS resource (the volume). The key policy must also allow the spot service-linked role (docs)."""
    if not ctx.kms_key_arns:
        return []
    keys = list(ctx.kms_key_arns)
    return [
        allow("UseKeysOfEncryptedVolumes", [a for a in KMS_FOR_VOLUMES if a != "kms:CreateGrant"], keys),
        allow("GrantKeysToEncryptedVolumes", ["kms:CreateGrant"], keys,
              {"Bool": {"kms:GrantIsForAWSResource": "true"}}),
    ]


def launch_on_demand(ctx: Context) -> list[Statement]:
    """RunInstances from the group's launch template, the instance only with our tags in the request (as for
    spot); no fleet, no spot requests, no spot service-linked role."""
    s = ctx.scope
    return [
        allow("LaunchTaggedInstances", ["ec2:RunInstances"], s.ec2_arn("instance"), {
            "Null": {f"aws:RequestTag/{REPLACES}": "false", f"aws:RequestTag/{EXECUTION}": "false"},
        }),
        allow("LaunchFromGroupTemplates", ["ec2:RunInstances"], [
            s.ec2_arn("image", owned=False), s.ec2_arn("key-pair"), s.ec2_arn("launch-template"),
            s.ec2_arn("network-interface"), s.ec2_arn("placement-group"), s.ec2_arn("security-group"),
            s.ec2_arn("snapshot", owned=False), s.ec2_arn("subnet"), s.ec2_arn("volume"),
        ]),
        allow("TagOnLaunchOnly", ["ec2:CreateTags"], [
            s.ec2_arn("instance"), s.ec2_arn("network-interface"), s.ec2_arn("volume"),
        ], {"StringEquals": {"ec2:CreateAction": "RunInstances"}}),
        allow("PassInstanceProfileRoleToEc2", ["iam:PassRole"], s.role_arn(ctx.instance_role_pattern),
              {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
    ]


def terminate_own_spots(ctx: Context) -> Statement:
    """TerminateInstances only on instances tagged at launch with the execution that launched them."""
    return allow("TerminateOwnSpots", ["ec2:TerminateInstances"], ctx.scope.ec2_arn("instance"),
                 {"Null": {f"ec2:ResourceTag/{EXECUTION}": "false"}})


def publish_events(ctx: Context) -> Statement:
    """PutEvents on the account's default bus only (tasks.core.swap_events), only with our source."""
    return allow("PublishSwapEvents", ["events:PutEvents"], ctx.scope.arn("events", "event-bus/default"),
                 {"StringEquals": {"events:source": SWAP_EVENT_SOURCE}})


def list_executions(ctx: Context, *machines: str) -> Statement:
    arns = [ctx.machine_arn(m) for m in machines]
    return allow("ListSwaps", ["states:ListExecutions"], arns[0] if len(arns) == 1 else arns)


def start_executions(ctx: Context, machine: str) -> Statement:
    return allow("StartExecutions", ["states:StartExecution"], ctx.machine_arn(machine))


def cooldown_items(ctx: Context, *actions: str) -> Statement:
    return allow("Cooldowns", actions, ctx.table_arn(COOLDOWN_TABLE))


def group_records(ctx: Context) -> Statement:
    """The group records (tasks/aws/coordination.py: the lease, holds and instance claims): `group#` items only."""
    return allow("GroupRecords", ["dynamodb:UpdateItem"], ctx.table_arn(COOLDOWN_TABLE),
                 {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["group#*"]}})


# The policy of each function, by function key: what its handler (and the tasks/ modules it imports) calls.
POLICIES: dict[str, Callable[[Context], list[Statement]]] = {
    # tasks/validate.py: describe_group_raw, describe_instance, lifecycle_hooks (a hook cools the group), claim the
    # instance; a manual swap reads the commitments (tasks/aws/commitments.py manual_swap_strands)
    "validate": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeLifecycleHooks",
                 "ec2:DescribeInstances"),
        group_records(ctx),
        # a launch hook in the way cools the group (`hook#<asg>`): the scanner skips it instead of reading hooks
        allow("HookCooldowns", ["dynamodb:PutItem"], ctx.table_arn(COOLDOWN_TABLE),
              {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["hook#*"]}}),
        *commitments(ctx),  # a manual swap to spot must not strand a commitment
    ],
    # tasks/launch_spot.py: group, instance types, template, prices, cooldowns; CreateFleet from the template
    "launch-spot": lambda ctx: [
        # DescribeInstances: a re-run finds the spot its first attempt launched, by the execution tag
        unscoped(ctx, "Describe", "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplateVersions",
                 "ec2:DescribeSpotPriceHistory", "ec2:DescribeInstances"),
        prices(ctx),
        # BatchWriteItem: pools cool; PutItem: the region's spot quota cools
        cooldown_items(ctx, "dynamodb:BatchWriteItem", "dynamodb:PutItem"),
        # BatchGetItem: the candidate pools' cooldowns and the region's spot quota, those keys only
        allow("CooldownReads", ["dynamodb:BatchGetItem"], ctx.table_arn(COOLDOWN_TABLE),
              {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["pool#*", "quota#*"]}}),
        group_records(ctx),  # no capacity or spot quota: the execution ends, its claim goes
        *launch_spots(ctx),
    ],
    # tasks/launch_on_demand.py: RunInstances from the group's template; no capacity cools the on-demand pool
    "launch-on-demand": lambda ctx: [
        cooldown_items(ctx, "dynamodb:BatchWriteItem"),
        group_records(ctx),  # no capacity: the execution ends, its claim goes
        *launch_on_demand(ctx),
    ],
    # tasks/check_spot.py: describe_instance_status
    "check-spot": lambda ctx: [unscoped(ctx, "Describe", "ec2:DescribeInstanceStatus")],
    # tasks/attach_spot.py: under the group's lease, MaxSize, suspend AZRebalance, attach, retire, give back
    "attach-spot": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups"),
        opted_in_groups(ctx, "HoldAttachRetire", "autoscaling:UpdateAutoScalingGroup", "autoscaling:SuspendProcesses",
                        "autoscaling:AttachInstances", "autoscaling:TerminateInstanceInAutoScalingGroup",
                        "autoscaling:ResumeProcesses"),
        group_records(ctx),
        publish_events(ctx),
    ],
    # tasks/retire_on_demand.py: under the group's lease, terminate the on-demand through the group, give back
    "retire-on-demand": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups", "elasticloadbalancing:DescribeTargetHealth",
                 "elasticloadbalancing:DescribeInstanceHealth"),
        opted_in_groups(ctx, "RetireThroughGroup", "autoscaling:TerminateInstanceInAutoScalingGroup",
                        "autoscaling:UpdateAutoScalingGroup", "autoscaling:ResumeProcesses"),
        group_records(ctx),
        publish_events(ctx),
    ],
    # tasks/restore_group.py: under the group's lease, MaxSize back by our slots, resume what we suspended
    "restore-group": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups"),
        opted_in_groups(ctx, "Restore", "autoscaling:UpdateAutoScalingGroup", "autoscaling:ResumeProcesses"),
        group_records(ctx),
    ],
    # tasks/cleanup.py: find our spots by tag, terminate them (through the group when attached)
    "cleanup": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"),
        opted_in_groups(ctx, "RemoveSpotThroughGroup", "autoscaling:TerminateInstanceInAutoScalingGroup"),
        terminate_own_spots(ctx),
        publish_events(ctx),
    ],
    # tasks/raise_capacity.py (interruption): under the group's lease, one more instance, suspend; cool the pool
    "raise-capacity": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups",
                 "elasticloadbalancing:DescribeTargetGroupAttributes",
                 "elasticloadbalancing:DescribeLoadBalancerAttributes"),
        opted_in_groups(ctx, "Hold", "autoscaling:UpdateAutoScalingGroup", "autoscaling:SuspendProcesses"),
        group_records(ctx),
        cooldown_items(ctx, "dynamodb:BatchWriteItem"),
    ],
    # tasks/release_spot.py (interruption): under the group's lease, the spot out through its group, give back
    "release-spot": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups", "elasticloadbalancing:DescribeTargetHealth",
                 "elasticloadbalancing:DescribeInstanceHealth"),
        opted_in_groups(ctx, "Release", "autoscaling:SetDesiredCapacity",
                        "autoscaling:TerminateInstanceInAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup",
                        "autoscaling:ResumeProcesses"),
        group_records(ctx),
        publish_events(ctx),
    ],
    # tasks/spot_events.py on_interruption: which group the spot is in, start the interruption workflow
    "spot-interruption": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances"),
        start_executions(ctx, INTERRUPTION),
    ],
    # tasks/spot_events.py on_rebalance: which group, the pause (and failed swaps' metrics), claim the instance and
    # cool its pool, start a swap
    "spot-rebalance": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances"),
        # PutItem: the claim; DeleteItem: the claim released when the start fails (EventBridge retries)
        cooldown_items(ctx, "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"),
        *pause_reads(ctx),
        start_executions(ctx, REPLACE),
    ],
    # tasks/scan.py: opted-in groups, their instances, running swaps, refreshes of groups it picks, start swaps
    "scanner": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeInstanceRefreshes",
                 "ec2:DescribeInstances"),
        list_executions(ctx, REPLACE),
        start_executions(ctx, REPLACE),
        # tasks/aws/coordination.py active_cooldowns (cooling pools wait; the pause by hand), idle records
        cooldown_items(ctx, "dynamodb:Scan", "dynamodb:PutItem", "dynamodb:DeleteItem"),
        *pause_signals(ctx),
        *commitments(ctx),  # covered on-demand stays; idle commitments pull spots back
    ],
    # tasks/sweep.py: our spots by tag, their membership, group records and claims, running swaps and rollouts;
    # terminate orphans, give back crashed executions' holds, drop their claims and stopped rollouts' claims
    "sweep": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                 "ec2:DescribeInstances"),
        list_executions(ctx, REPLACE, INTERRUPTION, ROLLOUT),
        terminate_own_spots(ctx),
        opted_in_groups(ctx, "Repair", "autoscaling:UpdateAutoScalingGroup", "autoscaling:ResumeProcesses"),
        cooldown_items(ctx, "dynamodb:Scan"),  # the group records and claims
        group_records(ctx),
    ],
    # tasks/rollout_plan.py: the group, its refreshes and instances, the pause and failed swaps, the rollout's
    # alarms; the group's rollout claim; the commitments (covered on-demand stays on-demand)
    "rollout-plan": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeInstanceRefreshes",
                 "ec2:DescribeInstances"),
        *pause_reads(ctx),
        group_records(ctx),  # UpdateItem on group# only: the rollout claim (and its release when nothing to do)
        *commitments(ctx),
    ],
    # tasks/rollout_gate.py: the group's tags (its pause), the alarms, the pause and failed swaps, a cancel request
    "rollout-gate": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups"),
        *pause_reads(ctx, "rollout#cancel#*"),
    ],
    # tasks/rollout_checkpoint.py: keep the checkpoint's task token
    "rollout-checkpoint": lambda ctx: [
        allow("CheckpointToken", ["dynamodb:PutItem"], ctx.table_arn(COOLDOWN_TABLE),
              {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["rollout#token#*"]}}),
    ],
    # tasks/rollout_release.py: every ending drops the group's rollout claim
    "rollout-release": lambda ctx: [group_records(ctx)],
    # tasks/launch_event.py: the launching group, the pause, its instances, running and failed swaps, commitments,
    # start one
    "launch-event": lambda ctx: [
        unscoped(ctx, "Describe", "autoscaling:DescribeAutoScalingGroups"),
        list_executions(ctx, REPLACE),
        start_executions(ctx, REPLACE),
        *pause_reads(ctx),
        *commitments(ctx),
    ],
}


def runtime_statements(ctx: Context, function: Function, *, dead_letter: bool) -> list[Statement]:
    """Logs to the function's own log group (created by the stack, so no logs:CreateLogGroup), X-Ray traces, and
    the dead-letter queue when the function is invoked asynchronously by EventBridge."""
    group = function_log_group(function.name(ctx.scope.prefix))
    statements = [
        allow("WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"],
              [ctx.scope.log_group_arn(group), ctx.scope.log_streams_arn(group)]),
        unscoped(ctx, "Trace", "xray:PutTraceSegments", "xray:PutTelemetryRecords"),
    ]
    if dead_letter:
        statements.append(allow("DeadLetter", ["sqs:SendMessage"], ctx.scope.dead_letter_queue_arn()))
    return statements


def function_policy(ctx: Context, function: Function, *, dead_letter: bool = False) -> dict[str, Any]:
    try:
        build = POLICIES[function.key]
    except KeyError:
        raise MissingPolicy(
            f"function {function.key!r} ({function.handler}) has no IAM policy: add POLICIES[{function.key!r}] "
            "in infra/iam.py listing the AWS calls its handler makes"
        ) from None
    return {"Version": VERSION, "Statement": build(ctx) + runtime_statements(ctx, function, dead_letter=dead_letter)}


def state_machine_policy(ctx: Context, machine: StateMachine) -> dict[str, Any]:
    """Invoke exactly the machine's functions; deliver its logs and traces."""
    functions = sorted({ctx.function_arn(key) for key in machine.substitutions.values()})
    return {"Version": VERSION, "Statement": [
        allow("InvokeOwnFunctions", ["lambda:InvokeFunction"], functions),
        *(s for child in sorted(set(machine.machines.values())) for s in child_executions(ctx, child)),
        unscoped(ctx, "DeliverLogs", "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                 "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                 "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"),
        unscoped(ctx, "Trace", "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                 "xray:GetSamplingTargets"),
    ]}


def events_policy(ctx: Context, machine: StateMachine) -> dict[str, Any]:
    """EventBridge starting the machine directly (a rule or schedule that targets a state machine)."""
    return {"Version": VERSION, "Statement": [
        allow("StartOwnMachine", ["states:StartExecution"], ctx.machine_arn(machine.key)),
    ]}


def assume_role(service: str, *, account: str | None = None, source_arn: str | None = None) -> dict[str, Any]:
    """Trust policy; `account`/`source_arn` guard against the confused deputy where the service passes them."""
    statement: Statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    condition: dict[str, Any] = {}
    if account:
        condition["StringEquals"] = {"aws:SourceAccount": account}
    if source_arn:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    if condition:
        statement["Condition"] = condition
    return {"Version": VERSION, "Statement": [statement]}


def dead_letter_queue_policy(ctx: Context, rule_keys: Iterable[str]) -> dict[str, Any]:
    """Only our rules may drop undeliverable events into the queue."""
    return {"Version": VERSION, "Statement": [{
        "Sid": "OwnRulesDeadLetters",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": ctx.scope.dead_letter_queue_arn(),
        "Condition": {"ArnEquals": {"aws:SourceArn": sorted(ctx.scope.rule_arn(k) for k in rule_keys)}},
    }]}


def dumps(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2, sort_keys=True)


def actions_of(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
