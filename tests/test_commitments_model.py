"""The embedded AWS's Reserved Instances and Savings Plans (moto has no purchase, no DescribeReservedInstances and
no Savings Plans): each rule AWS documents, through plain boto3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from asg_optimizer.local.embedded import EmbeddedAws


def offering(aws: EmbeddedAws, instance_type: str = "m5.large", zone: str | None = "us-east-1a",
             payment: str = "No Upfront") -> dict:
    ec2 = aws.client("ec2")
    kwargs = {"InstanceType": instance_type, "OfferingType": payment, "OfferingClass": "standard",
              "ProductDescription": "Linux/UNIX", "MinDuration": 31536000, "MaxDuration": 31536000}
    if zone:
        kwargs["AvailabilityZone"] = zone
    found = ec2.describe_reserved_instances_offerings(**kwargs, Filters=[
        {"Name": "scope", "Values": ["Availability Zone" if zone else "Region"]}])["ReservedInstancesOfferings"]
    assert len(found) == 1, found
    return found[0]


def error_of(call, **kwargs) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def test_purchased_ri_is_described_active_with_the_offerings_terms(aws: EmbeddedAws) -> None:
    chosen = offering(aws)
    assert chosen["RecurringCharges"][0]["Frequency"] == "Hourly"
    assert chosen["RecurringCharges"][0]["Amount"] == pytest.approx(0.096 * (1 - 0.37))  # snapshot m5.large $0.096
    ec2 = aws.client("ec2")
    ri_id = ec2.purchase_reserved_instances_offering(ReservedInstancesOfferingId=chosen["ReservedInstancesOfferingId"],
                                                     InstanceCount=4)["ReservedInstancesId"]
    [ri] = ec2.describe_reserved_instances(Filters=[{"Name": "state", "Values": ["active"]}])["ReservedInstances"]
    assert (ri["ReservedInstancesId"], ri["InstanceType"], ri["InstanceCount"], ri["Scope"], ri["AvailabilityZone"],
            ri["ProductDescription"], ri["InstanceTenancy"], ri["OfferingClass"]) == (
        ri_id, "m5.large", 4, "Availability Zone", "us-east-1a", "Linux/UNIX", "default", "standard")
    assert ri["End"] - ri["Start"] == timedelta(days=365)


def test_unknown_offering_is_invalid_reserved_instances_offering_id(aws: EmbeddedAws) -> None:
    code, message = error_of(aws.client("ec2").purchase_reserved_instances_offering,
                             ReservedInstancesOfferingId="11111111-2222-3333-4444-555555555555", InstanceCount=1)
    assert code == "InvalidReservedInstancesOfferingId" and "11111111-2222" in message


def test_instance_count_below_one_is_invalid_parameter_value(aws: EmbeddedAws) -> None:
    code, _ = error_of(aws.client("ec2").purchase_reserved_instances_offering,
                       ReservedInstancesOfferingId=offering(aws)["ReservedInstancesOfferingId"], InstanceCount=0)
    assert code == "InvalidParameterValue"


def test_more_than_twenty_ris_a_month_is_reserved_instances_limit_exceeded(aws: EmbeddedAws) -> None:
    ec2, regional = aws.client("ec2"), offering(aws, zone=None)["ReservedInstancesOfferingId"]
    ec2.purchase_reserved_instances_offering(ReservedInstancesOfferingId=regional, InstanceCount=20)
    code, _ = error_of(ec2.purchase_reserved_instances_offering, ReservedInstancesOfferingId=regional,
                       InstanceCount=1)
    assert code == "ReservedInstancesLimitExceeded"
    zonal = offering(aws)["ReservedInstancesOfferingId"]  # zonal quotas are per zone, apart from the regional one
    ec2.purchase_reserved_instances_offering(ReservedInstancesOfferingId=zonal, InstanceCount=1)


@pytest.mark.long
def test_offerings_page_at_most_100_with_next_token(aws: EmbeddedAws) -> None:
    ec2 = aws.client("ec2")
    first = ec2.describe_reserved_instances_offerings(InstanceType="m5.large")
    assert len(first["ReservedInstancesOfferings"]) == 84 and "NextToken" not in first  # 7 scopes x 4 x 3
    pages = list(ec2.get_paginator("describe_reserved_instances_offerings").paginate(
        PaginationConfig={"PageSize": 100}))
    assert all(len(p["ReservedInstancesOfferings"]) <= 100 for p in pages) and len(pages) > 1
    code, _ = error_of(ec2.describe_reserved_instances_offerings, MaxResults=101)
    assert code == "InvalidParameterValue"


def test_ri_whose_end_passes_is_retired(aws: EmbeddedAws) -> None:
    ec2 = aws.client("ec2")
    offering_id = offering(aws)["ReservedInstancesOfferingId"]
    ri_id = ec2.purchase_reserved_instances_offering(ReservedInstancesOfferingId=offering_id,
                                                     InstanceCount=1)["ReservedInstancesId"]
    aws.commitments_model.expire(ri_id)
    [ri] = ec2.describe_reserved_instances(ReservedInstancesIds=[ri_id])["ReservedInstances"]
    assert ri["State"] == "retired"
    assert ec2.describe_reserved_instances(Filters=[{"Name": "state", "Values": ["active"]}])["ReservedInstances"] == []


def test_purchase_time_in_the_future_queues_the_ri(aws: EmbeddedAws) -> None:
    ec2 = aws.client("ec2")
    later = datetime.now(UTC) + timedelta(days=2)
    ri_id = ec2.purchase_reserved_instances_offering(
        ReservedInstancesOfferingId=offering(aws)["ReservedInstancesOfferingId"], InstanceCount=1,
        PurchaseTime=later)["ReservedInstancesId"]
    assert ec2.describe_reserved_instances(ReservedInstancesIds=[ri_id])["ReservedInstances"][0]["State"] == "queued"


def test_describe_unknown_ri_id_is_not_found(aws: EmbeddedAws) -> None:
    code, _ = error_of(aws.client("ec2").describe_reserved_instances, ReservedInstancesIds=["nope"])
    assert code == "InvalidReservedInstancesID.NotFound"


def sp_offering(aws: EmbeddedAws, plan_type: str = "Compute", payment: str = "No Upfront",
                family: str | None = None) -> str:
    filters = [{"name": "instanceFamily", "values": [family]}] if family else []
    found = aws.client("savingsplans").describe_savings_plans_offerings(
        planTypes=[plan_type], paymentOptions=[payment], durations=[31536000], filters=filters)["searchResults"]
    assert len(found) == 1, found
    return str(found[0]["offeringId"])


def test_savings_plan_created_described_and_rated_from_the_price_snapshot(aws: EmbeddedAws) -> None:
    sp = aws.client("savingsplans")
    plan_id = sp.create_savings_plan(savingsPlanOfferingId=sp_offering(aws, "EC2Instance", family="m5"),
                                     commitment="0.50")["savingsPlanId"]
    [plan] = sp.describe_savings_plans(states=["active"])["savingsPlans"]
    assert (plan["savingsPlanId"], plan["savingsPlanType"], plan["commitment"], plan["ec2InstanceFamily"],
            plan["region"]) == (plan_id, "EC2Instance", "0.5", "m5", "us-east-1")
    rates = sp.describe_savings_plan_rates(savingsPlanId=plan_id, filters=[
        {"name": "instanceType", "values": ["m5.large", "c5.large"]}])["searchResults"]
    assert [(r["usageType"], r["rate"], r["unit"]) for r in rates] == [("BoxUsage:m5.large", "0.062400", "Hrs")]
    properties = {p["name"]: p["value"] for p in rates[0]["properties"]}
    assert properties == {"region": "us-east-1", "instanceType": "m5.large", "instanceFamily": "m5",
                          "productDescription": "Linux/UNIX", "tenancy": "shared"}


def test_savings_plan_rates_page_with_next_token(aws: EmbeddedAws) -> None:
    sp = aws.client("savingsplans")
    plan_id = sp.create_savings_plan(savingsPlanOfferingId=sp_offering(aws), commitment="1")["savingsPlanId"]
    first = sp.describe_savings_plan_rates(savingsPlanId=plan_id, maxResults=100)
    second = sp.describe_savings_plan_rates(savingsPlanId=plan_id, maxResults=100, nextToken=first["nextToken"])
    assert len(first["searchResults"]) == 100 and len(second["searchResults"]) == 34 and "nextToken" not in second


def test_unknown_savings_plan_offering_is_resource_not_found(aws: EmbeddedAws) -> None:
    code, _ = error_of(aws.client("savingsplans").create_savings_plan, savingsPlanOfferingId="nope", commitment="1")
    assert code == "ResourceNotFoundException"
    code, _ = error_of(aws.client("savingsplans").describe_savings_plan_rates, savingsPlanId="nope")
    assert code == "ResourceNotFoundException"


def test_upfront_payment_amount_only_and_always_for_partial_upfront(aws: EmbeddedAws) -> None:
    sp = aws.client("savingsplans")
    code, message = error_of(sp.create_savings_plan, savingsPlanOfferingId=sp_offering(aws, payment="Partial Upfront"),
                             commitment="1")
    assert (code, message) == ("ValidationException", "upfrontPaymentAmount is required for Partial Upfront")
    code, _ = error_of(sp.create_savings_plan, savingsPlanOfferingId=sp_offering(aws), commitment="1",
                       upfrontPaymentAmount="100")
    assert code == "ValidationException"
    code, _ = error_of(sp.create_savings_plan, savingsPlanOfferingId=sp_offering(aws), commitment="-1")
    assert code == "ValidationException"


def test_savings_plan_client_token_returns_the_first_plan(aws: EmbeddedAws) -> None:
    sp, offer = aws.client("savingsplans"), sp_offering(aws)
    first = sp.create_savings_plan(savingsPlanOfferingId=offer, commitment="1", clientToken="t-1")["savingsPlanId"]
    again = sp.create_savings_plan(savingsPlanOfferingId=offer, commitment="1", clientToken="t-1")["savingsPlanId"]
    assert first == again and len(sp.describe_savings_plans()["savingsPlans"]) == 1


def test_savings_plan_whose_end_passes_is_retired(aws: EmbeddedAws) -> None:
    sp = aws.client("savingsplans")
    plan_id = sp.create_savings_plan(savingsPlanOfferingId=sp_offering(aws), commitment="1")["savingsPlanId"]
    aws.commitments_model.expire_plan(plan_id)
    assert sp.describe_savings_plans(savingsPlanIds=[plan_id])["savingsPlans"][0]["state"] == "retired"
    assert sp.describe_savings_plans(states=["active"])["savingsPlans"] == []


def test_describe_savings_plans_max_results_is_at_most_1000_and_pages_with_next_token(aws: EmbeddedAws) -> None:
    sp = aws.client("savingsplans")
    made = sorted(sp.create_savings_plan(savingsPlanOfferingId=sp_offering(aws), commitment=str(n))["savingsPlanId"]
                  for n in (1, 2, 3))
    code, message = error_of(sp.describe_savings_plans, maxResults=1001)
    assert (code, message) == ("ValidationException", "maxResults must be between 1 and 1000, got 1001")
    first = sp.describe_savings_plans(maxResults=2)
    second = sp.describe_savings_plans(maxResults=2, nextToken=first["nextToken"])
    assert len(first["savingsPlans"]) == 2 and "nextToken" not in second
    assert sorted(p["savingsPlanId"] for p in first["savingsPlans"] + second["savingsPlans"]) == made


def test_describe_savings_plans_takes_at_most_100_arns(aws: EmbeddedAws) -> None:
    sp = aws.client("savingsplans")
    plan_id = sp.create_savings_plan(savingsPlanOfferingId=sp_offering(aws), commitment="1")["savingsPlanId"]
    arn = f"arn:aws:savingsplans::123456789012:savingsplan/{plan_id}"
    assert [p["savingsPlanId"] for p in sp.describe_savings_plans(savingsPlanArns=[arn])["savingsPlans"]] == [plan_id]
    code, message = error_of(sp.describe_savings_plans, savingsPlanArns=[arn] * 101)
    assert (code, message) == ("ValidationException", "savingsPlanArns has at most 100 members, got 101")
