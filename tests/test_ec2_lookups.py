"""EC2 finds instances and their tags by id as AWS does, however many the account holds (the embedded AWS indexes
moto's walks)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.group_builder import IMAGE_ID


def _run(aws: EmbeddedAws, count: int) -> list[str]:
    found = aws.client("ec2").run_instances(ImageId=IMAGE_ID, InstanceType="m5.large", MinCount=count,
                                            MaxCount=count)["Instances"]
    return [i["InstanceId"] for i in found]


def _described(aws: EmbeddedAws, ids: list[str]) -> list[str]:
    pages = aws.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    return [i["InstanceId"] for r in pages for i in r["Instances"]]


def test_describe_instances_by_id_finds_instances_launched_after_the_first_lookup(aws: EmbeddedAws) -> None:
    first = _run(aws, 2)
    assert sorted(_described(aws, first)) == sorted(first)
    later = _run(aws, 3)  # the index must learn instances made after it was built
    assert sorted(_described(aws, [later[2], first[0]])) == sorted([later[2], first[0]])


def test_a_terminated_instance_is_still_described_by_id(aws: EmbeddedAws) -> None:
    (instance,) = _run(aws, 1)
    aws.client("ec2").terminate_instances(InstanceIds=[instance])
    states = {i["InstanceId"]: i["State"]["Name"] for r in aws.client("ec2").describe_instances(
        InstanceIds=[instance])["Reservations"] for i in r["Instances"]}
    assert states == {instance: "terminated"}


def test_describe_instances_with_an_id_that_does_not_exist_is_invalid_instance_id_not_found(
        aws: EmbeddedAws) -> None:
    (instance,) = _run(aws, 1)
    with pytest.raises(ClientError) as refused:
        aws.client("ec2").describe_instances(InstanceIds=[instance, "i-0123456789abcdef0"])
    assert refused.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    assert "i-0123456789abcdef0" in refused.value.response["Error"]["Message"]


def test_an_instance_carries_its_own_tags_and_no_other_resources(aws: EmbeddedAws) -> None:
    ec2 = aws.client("ec2")
    first, second = _run(aws, 2)
    ec2.create_tags(Resources=[first], Tags=[{"Key": "team", "Value": "web"}, {"Key": "Name", "Value": "a"}])
    ec2.create_tags(Resources=[second], Tags=[{"Key": "team", "Value": "db"}])
    tags = {i["InstanceId"]: i.get("Tags", []) for r in ec2.describe_instances(InstanceIds=[first, second])[
        "Reservations"] for i in r["Instances"]}
    assert tags == {first: [{"Key": "team", "Value": "web"}, {"Key": "Name", "Value": "a"}],
                    second: [{"Key": "team", "Value": "db"}]}
