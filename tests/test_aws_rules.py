"""AWS's documented rules the coordination relies on, each encoded in the embedded AWS (a model where moto is
kinder, moto itself where it already agrees) and proved here by name."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from asg_optimizer.local import stepfunctions_model
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import GroupSpec, create_group, create_network
from stack.description import INTERRUPTION


def full_group(aws: EmbeddedAws) -> str:
    """A group at MaxSize (desired 2 = max 2) and a running instance outside it; returns that instance."""
    network = create_network()
    create_group(network, GroupSpec("web", desired=2, max_size=2, zones=("a",)))
    return aws.client("ec2").run_instances(ImageId="ami-0a1b2c3d4e5f60718", InstanceType="m5.large", MinCount=1,
                                           MaxCount=1, SubnetId=network.subnets["a"])["Instances"][0]["InstanceId"]


def sizes(aws: EmbeddedAws) -> tuple[int, int]:
    g = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    return g["DesiredCapacity"], g["MaxSize"]


def test_attach_instances_refuses_with_validation_error_when_desired_would_exceed_max_size(aws: EmbeddedAws) -> None:
    """Not ResourceContention (moto's answer, which callers retry): AWS refuses for good until sizes change."""
    extra = full_group(aws)
    with pytest.raises(ClientError) as refused:
        aws.client("autoscaling").attach_instances(AutoScalingGroupName="web", InstanceIds=[extra])
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert refused.value.response["Error"]["Message"] == (
        "AutoScalingGroup web has min-size=0, max-size=2, and desired-size=2. To attach 1 instance, please update "
        "the AutoScalingGroup sizes appropriately.")
    assert sizes(aws) == (2, 2)
    aws.client("autoscaling").update_auto_scaling_group(AutoScalingGroupName="web", MaxSize=3)
    aws.client("autoscaling").attach_instances(AutoScalingGroupName="web", InstanceIds=[extra])
    assert sizes(aws) == (3, 3)  # desired raised by the number attached


def test_create_or_update_tags_refuses_a_51st_tag(aws: EmbeddedAws) -> None:
    create_group(create_network(), GroupSpec("web", desired=0, max_size=1,
                                             extra_tags={f"k{n:02d}": "v" for n in range(47)}))  # 50 with ours
    tag = {"ResourceId": "web", "ResourceType": "auto-scaling-group", "Value": "v", "PropagateAtLaunch": False}
    autoscaling = aws.client("autoscaling")
    autoscaling.create_or_update_tags(Tags=[{**tag, "Key": "k00"}])  # overwriting a tag adds none
    with pytest.raises(ClientError) as refused:
        autoscaling.create_or_update_tags(Tags=[{**tag, "Key": "one-more"}])
    assert refused.value.response["Error"]["Code"] == "LimitExceeded"
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"]
    assert len(groups[0]["Tags"]) == 50


def test_terminate_instance_in_auto_scaling_group_with_decrement_is_relative(aws: EmbeddedAws) -> None:
    full_group(aws)
    autoscaling = aws.client("autoscaling")
    members = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    autoscaling.update_auto_scaling_group(AutoScalingGroupName="web", MaxSize=5, DesiredCapacity=4)
    autoscaling.terminate_instance_in_auto_scaling_group(InstanceId=members["Instances"][0]["InstanceId"],
                                                         ShouldDecrementDesiredCapacity=True)
    assert sizes(aws) == (3, 5)  # one off what is there now, not back to a value read earlier


def test_update_auto_scaling_group_sets_absolute_values(aws: EmbeddedAws) -> None:
    full_group(aws)
    autoscaling = aws.client("autoscaling")
    autoscaling.update_auto_scaling_group(AutoScalingGroupName="web", MaxSize=4, DesiredCapacity=3)
    autoscaling.update_auto_scaling_group(AutoScalingGroupName="web", DesiredCapacity=3)  # a second writer
    assert sizes(aws) == (3, 4)


def test_start_execution_with_the_same_name_and_input_is_idempotent_while_it_runs(aws: EmbeddedAws) -> None:
    sfn, machine = aws.client("stepfunctions"), aws.deployment.replace_arn
    payload = json.dumps({"asg_name": "ghost", "instance_id": "i-0123456789abcdef0",
                          "timing": {"start_delay_seconds": 3600}})
    first = sfn.start_execution(stateMachineArn=machine, name="same", input=payload)
    again = sfn.start_execution(stateMachineArn=machine, name="same", input=payload)
    assert again["executionArn"] == first["executionArn"]
    with pytest.raises(ClientError) as refused:
        sfn.start_execution(stateMachineArn=machine, name="same", input=payload.replace("3600", "3599"))
    assert refused.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
    quick = json.dumps({"asg_name": "ghost", "instance_id": "i-0123456789abcdef0"})  # refused at once: closes
    aws.wait(sfn.start_execution(stateMachineArn=machine, name="closed", input=quick)["executionArn"])
    with pytest.raises(ClientError) as closed:
        sfn.start_execution(stateMachineArn=machine, name="closed", input=quick)
    assert closed.value.response["Error"]["Code"] == "ExecutionAlreadyExists"


def _ends_by_metric(aws: EmbeddedAws, machine: str) -> dict[str, float]:
    now = datetime.now(UTC)
    names = ("ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")
    results = aws.client("cloudwatch").get_metric_data(
        StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=1), MetricDataQueries=[
            {"Id": f"m{n}", "Label": name, "MetricStat": {"Period": 60, "Stat": "Sum", "Metric": {
                "Namespace": "AWS/States", "MetricName": name,
                "Dimensions": [{"Name": "StateMachineArn", "Value": machine}]}}} for n, name in enumerate(names)],
    )["MetricDataResults"]
    return {r["Label"]: sum(r["Values"]) for r in results if r["Values"]}


def test_each_execution_end_is_an_aws_states_metric_of_its_state_machine(aws: EmbeddedAws) -> None:
    """Step Functions counts each ending in CloudWatch (AWS/States, by StateMachineArn); moto counts none."""
    sfn, replace, fallback = aws.client("stepfunctions"), aws.deployment.replace_arn, aws.deployment.state_machine_arns[
        INTERRUPTION]
    ghost = {"asg_name": "ghost", "instance_id": "i-0123456789abcdef0"}
    refused = sfn.start_execution(stateMachineArn=replace, name="refused", input=json.dumps(ghost))["executionArn"]
    assert aws.wait(refused)["status"] == "SUCCEEDED"
    failed = sfn.start_execution(stateMachineArn=fallback, name="failed", input=json.dumps(
        {"asg_name": "ghost", "spot_instance_id": "i-0123456789abcdef0"}))["executionArn"]
    assert aws.wait(failed, timeout=60)["status"] == "FAILED"
    parked = sfn.start_execution(stateMachineArn=replace, name="parked", input=json.dumps(
        {**ghost, "timing": {"start_delay_seconds": 3600}}))["executionArn"]
    sfn.stop_execution(executionArn=parked)
    assert aws.wait(parked)["status"] == "ABORTED"
    assert _ends_by_metric(aws, replace) == {"ExecutionsSucceeded": 1, "ExecutionsAborted": 1}
    assert _ends_by_metric(aws, fallback) == {"ExecutionsFailed": 1}


def test_dynamodb_conditional_update_fails_with_the_item_when_asked(aws: EmbeddedAws) -> None:
    dynamodb, table = aws.client("dynamodb"), aws.deployment.table_names["cooldowns"]
    key = {"cooldown_key": {"S": "group#web"}}
    write = {"TableName": table, "Key": key, "UpdateExpression": "SET #o = :me",
             "ConditionExpression": "attribute_not_exists(#o) OR #o = :me", "ExpressionAttributeNames": {"#o": "owner"}}
    dynamodb.update_item(**write, ExpressionAttributeValues={":me": {"S": "a"}})
    with pytest.raises(ClientError) as refused:
        dynamodb.update_item(**write, ExpressionAttributeValues={":me": {"S": "b"}},
                             ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert refused.value.response["Item"]["owner"] == {"S": "a"}
    with pytest.raises(ClientError) as unused:
        dynamodb.update_item(**{**write, "ExpressionAttributeNames": {"#o": "owner", "#x": "x"}},
                             ExpressionAttributeValues={":me": {"S": "a"}})
    assert unused.value.response["Error"]["Code"] == "ValidationException"


def test_list_executions_is_eventually_consistent_when_modeled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's clock is moved, not waited for (a 1.1 s sleep raced a 1.0 s lag): hidden for `lag` on any machine."""
    with EmbeddedAws(boot_delay_seconds=0, list_executions_lag_seconds=60) as aws:
        sfn, machine = aws.client("stepfunctions"), aws.deployment.replace_arn
        started = sfn.start_execution(stateMachineArn=machine, name="young", input=json.dumps(
            {"asg_name": "ghost", "instance_id": "i-0123456789abcdef0", "timing": {"start_delay_seconds": 600}}))
        start = sfn.describe_execution(executionArn=started["executionArn"])["startDate"]
        assert sfn.describe_execution(executionArn=started["executionArn"])["status"] == "RUNNING"
        for after, listed in ((0, []), (59, []), (61, ["young"]), (3600, ["young"])):
            at = start.astimezone(UTC).replace(tzinfo=None) + timedelta(seconds=after)
            monkeypatch.setattr(stepfunctions_model, "utcnow", lambda at=at: at)
            assert [e["name"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]] == listed, after


def cooldown_keys(n: int, start: int = 0) -> list[dict[str, dict[str, str]]]:
    return [{"cooldown_key": {"S": f"pool#t{i}#us-east-1a"}} for i in range(start, start + n)]


def test_batch_get_item_refuses_more_than_100_keys_a_request(aws: EmbeddedAws) -> None:
    """moto agrees with AWS: more than 100 keys is a ValidationException, and so are duplicate keys."""
    table = aws.deployment.table_names["cooldowns"]
    dynamodb = aws.client("dynamodb")
    assert dynamodb.batch_get_item(RequestItems={table: {"Keys": cooldown_keys(100)}})["Responses"] == {table: []}
    for keys in (cooldown_keys(101), cooldown_keys(2) + cooldown_keys(1)):
        with pytest.raises(ClientError) as refused:
            dynamodb.batch_get_item(RequestItems={table: {"Keys": keys}})
        assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_batch_get_item_answers_in_part_with_unprocessed_keys_when_modeled(aws: EmbeddedAws) -> None:
    """AWS may answer part of a BatchGetItem (throughput, size) and return the rest in UnprocessedKeys; moto only
    past 16 MB. With `batch_reads.unprocessed_calls = 1` the next call answers the first half of the keys."""
    table = aws.deployment.table_names["cooldowns"]
    dynamodb = aws.client("dynamodb")
    for key in cooldown_keys(4):
        dynamodb.put_item(TableName=table, Item={**key, "expires_at": {"N": "1"}})
    aws.batch_reads.unprocessed_calls = 1
    first = dynamodb.batch_get_item(RequestItems={table: {"Keys": cooldown_keys(4)}})
    assert [i["cooldown_key"]["S"] for i in first["Responses"][table]] == ["pool#t0#us-east-1a", "pool#t1#us-east-1a"]
    assert first["UnprocessedKeys"] == {table: {"Keys": cooldown_keys(2, start=2)}}
    again = dynamodb.batch_get_item(RequestItems=first["UnprocessedKeys"])
    assert len(again["Responses"][table]) == 2 and not again.get("UnprocessedKeys")
