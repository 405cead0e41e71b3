"""Reserved Instances and Savings Plans for the embedded AWS. moto 5.2 answers DescribeReservedInstancesOfferings
with three instance types at random upfront prices and raises NotImplementedError for
PurchaseReservedInstancesOffering and DescribeReservedInstances; it has no Savings Plans API at all. Modeled, so
plain boto3 (in-process or against `local serve`) runs the whole purchase-to-coverage loop:

- DescribeReservedInstancesOfferings: every type of the price snapshot, regional and zonal (each zone), standard
  and convertible, 1 and 3 years, No/Partial/All Upfront, priced from the snapshot's on-demand price (fixed
  discounts below); filters and parameters as EC2 takes them; MaxResults at most 100 (default 100) with NextToken.
- PurchaseReservedInstancesOffering: an unknown offering is `InvalidReservedInstancesOfferingId`; InstanceCount
  must be at least 1 (`InvalidParameterValue`); more than 20 regional RIs per region or 20 zonal RIs per zone in a
  month is `ReservedInstancesLimitExceeded` (EC2's default quota); a PurchaseTime in the future queues it.
- DescribeReservedInstances: `queued` until its start, `active` until its end, then `retired` (an RI whose end
  passes stops covering); `expire(id)` ends one now. Unknown ids are `InvalidReservedInstancesID.NotFound`.
- Savings Plans (rest-json, `savingsplans`): DescribeSavingsPlansOfferings (Compute; EC2 Instance per family and
  region), CreateSavingsPlan (an unknown offering is ResourceNotFoundException; commitment must be a positive
  amount; `upfrontPaymentAmount` only, and then required, for Partial Upfront; clientToken idempotent; a future
  purchaseTime queues it), DescribeSavingsPlans (states from the clock, as for RIs; ids, at most 100 ARNs,
  filters; maxResults 1-1000 with nextToken) and DescribeSavingsPlanRates (the plan's rate per EC2 usage,
  derived from the snapshot's on-demand price; filters; maxResults 1-1000 with nextToken). `expire_plan(id)` ends
  one now.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core.botocore_stubber import BotocoreStubber
from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses.reserved_instances import ReservedInstances

from asg_optimizer.local.ec2_model import _when as request_time
from asg_optimizer.local.patching import Patches, Patching
from tasks.aws.prices import snapshot
from tasks.core.prices import LINUX, snapshot_price

YEAR, THREE_YEARS = 31536000, 94608000
ZONE_SUFFIXES = "abcdef"
PAYMENTS = ("No Upfront", "Partial Upfront", "All Upfront")
# Discounts off on-demand (illustrative, in AWS's published ranges): (class or plan type, years, payment) -> share.
RI_DISCOUNT = {("standard", 1): 0.37, ("standard", 3): 0.57, ("convertible", 1): 0.28, ("convertible", 3): 0.48}
SP_DISCOUNT = {("EC2Instance", 1): 0.35, ("EC2Instance", 3): 0.55, ("Compute", 1): 0.27, ("Compute", 3): 0.47}
PAYMENT_BONUS = {"No Upfront": 0.0, "Partial Upfront": 0.02, "All Upfront": 0.04}
MONTHLY_RI_LIMIT = 20
_OFFERINGS_PAGE = 100


def _id(*parts: object) -> str:
    return str(uuid.UUID(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _page(items: list[Any], token: str | None, size: int) -> tuple[list[Any], str | None]:
    start = int(token) if token and token.isdigit() else 0
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


@dataclass
class Reservation:
    reservation_id: str
    offering: dict[str, Any]
    count: int
    start: datetime
    end: datetime


@dataclass
class Plan:
    plan_id: str
    offering: dict[str, Any]
    commitment: float
    upfront: float
    start: datetime
    end: datetime
    token: str | None = None


@dataclass
class CommitmentsModel(Patching):
    region: str = "us-east-1"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    reservations: dict[str, Reservation] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # operations answered, for tests
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _patches: Patches = field(default_factory=Patches)
    _offerings: list[dict[str, Any]] = field(default_factory=list)

    # --- shared ------------------------------------------------------------------------------------------------
    def types(self) -> list[str]:
        return sorted(snapshot()["prices"]["linux"].get(self.region, {}))

    def on_demand(self, instance_type: str) -> float | None:
        return snapshot_price(snapshot(), self.region, instance_type, LINUX)

    @staticmethod
    def _state(start: datetime, end: datetime, now: datetime) -> str:
        return "queued" if now < start else "active" if now < end else "retired"

    # --- Reserved Instances ------------------------------------------------------------------------------------
    def ri_offerings(self) -> list[dict[str, Any]]:
        if self._offerings:
            return self._offerings
        zones = [None, *(f"{self.region}{s}" for s in ZONE_SUFFIXES)]
        for instance_type in self.types():
            price = self.on_demand(instance_type) or 0.0
            for zone in zones:
                for (offering_class, years), discount in sorted(RI_DISCOUNT.items()):
                    for payment in PAYMENTS:
                        hourly = round(price * (1 - discount - PAYMENT_BONUS[payment]), 6)
                        hours = years * 8760
                        upfront = {"No Upfront": 0.0, "Partial Upfront": 0.5, "All Upfront": 1.0}[payment]
                        self._offerings.append({
                            "ReservedInstancesOfferingId": _id("ri", instance_type, zone, offering_class, years,
                                                               payment),
                            "InstanceType": instance_type, "Duration": years * YEAR,
                            "FixedPrice": round(hourly * hours * upfront, 2), "UsagePrice": 0.0,
                            "CurrencyCode": "USD", "InstanceTenancy": "default", "Marketplace": False,
                            "OfferingClass": offering_class, "OfferingType": payment,
                            "ProductDescription": "Linux/UNIX", "PricingDetails": [],
                            "RecurringCharges": [] if upfront == 1.0 else [
                                {"Amount": round(hourly * (1 - upfront), 6), "Frequency": "Hourly"}],
                            "Scope": "Availability Zone" if zone else "Region",
                            **({"AvailabilityZone": zone} if zone else {}),
                        })
        return self._offerings

    def _describe_offerings(self, response: ReservedInstances) -> ActionResult:
        get = response._get_param
        filters = response._filters_from_querystring()
        wanted = {
            "InstanceType": set(filters.get("instance-type", [])) | ({get("InstanceType")} - {None}),
            "AvailabilityZone": set(filters.get("availability-zone", [])) | ({get("AvailabilityZone")} - {None}),
            "ProductDescription": set(filters.get("product-description", [])) | ({get("ProductDescription")} - {None}),
            "OfferingType": set(filters.get("offering-type", [])) | ({get("OfferingType")} - {None}),
            "OfferingClass": ({get("OfferingClass")} - {None}),
            "InstanceTenancy": set(filters.get("instance-tenancy", [])) | ({get("InstanceTenancy")} - {None}),
            "Scope": set(filters.get("scope", [])),
            "ReservedInstancesOfferingId": set(get("ReservedInstancesOfferingIds", []) or filters.get(
                "reserved-instances-offering-id", [])),
        }
        durations = {int(d) for d in filters.get("duration", [])}
        low, high = int(get("MinDuration") or 2592000), int(get("MaxDuration") or THREE_YEARS)
        size = int(get("MaxResults") or _OFFERINGS_PAGE)
        if not 1 <= size <= _OFFERINGS_PAGE:
            raise EC2ClientError("InvalidParameterValue", f"MaxResults must be between 1 and {_OFFERINGS_PAGE}")
        found = [o for o in self.ri_offerings()
                 if all(not values or str(o.get(key)) in values for key, values in wanted.items())
                 and (not durations or o["Duration"] in durations) and low <= o["Duration"] <= high]
        page, token = _page(found, get("NextToken"), size)
        self.requests.append("DescribeReservedInstancesOfferings")
        return ActionResult({"ReservedInstancesOfferings": page, **({"NextToken": token} if token else {})})

    def _purchase(self, response: ReservedInstances) -> ActionResult:
        response.error_on_dryrun()
        get = response._get_param
        offering_id, count = get("ReservedInstancesOfferingId"), int(get("InstanceCount") or 0)
        offering = next((o for o in self.ri_offerings() if o["ReservedInstancesOfferingId"] == offering_id), None)
        if offering is None:
            raise EC2ClientError("InvalidReservedInstancesOfferingId",
                                 f"The Reserved Instances offering ID '{offering_id}' does not exist.")
        if count < 1:
            raise EC2ClientError("InvalidParameterValue", f"InstanceCount must be at least 1, got {count}")
        now = self.clock()
        start = _when(get("PurchaseTime")) or now
        with self._lock:
            month = [r for r in self.reservations.values() if r.start > now - timedelta(days=30)
                     and r.offering.get("AvailabilityZone") == offering.get("AvailabilityZone")]
            if sum(r.count for r in month) + count > MONTHLY_RI_LIMIT:
                where = offering.get("AvailabilityZone") or f"regional in {self.region}"
                raise EC2ClientError("ReservedInstancesLimitExceeded", (
                    f"Your current quota does not allow you to purchase the required number of reserved instances "
                    f"({MONTHLY_RI_LIMIT} a month, {where})."))
            reservation = Reservation(str(uuid.uuid4()), offering, count, start,
                                      start + timedelta(seconds=offering["Duration"]))
            self.reservations[reservation.reservation_id] = reservation
        self.requests.append("PurchaseReservedInstancesOffering")
        return ActionResult({"ReservedInstancesId": reservation.reservation_id})

    def reserved_instance(self, reservation: Reservation, now: datetime) -> dict[str, Any]:
        o = reservation.offering
        return {
            "ReservedInstancesId": reservation.reservation_id, "InstanceType": o["InstanceType"],
            "InstanceCount": reservation.count, "Start": _iso(reservation.start), "End": _iso(reservation.end),
            "Duration": o["Duration"], "FixedPrice": o["FixedPrice"], "UsagePrice": o["UsagePrice"],
            "RecurringCharges": o["RecurringCharges"], "CurrencyCode": "USD", "InstanceTenancy": o["InstanceTenancy"],
            "OfferingClass": o["OfferingClass"], "OfferingType": o["OfferingType"],
            "ProductDescription": o["ProductDescription"], "Scope": o["Scope"],
            "State": self._state(reservation.start, reservation.end, now),
            **({"AvailabilityZone": o["AvailabilityZone"]} if o.get("AvailabilityZone") else {}),
        }

    def _describe_reserved(self, response: ReservedInstances) -> ActionResult:
        get = response._get_param
        filters = response._filters_from_querystring()
        ids = list(get("ReservedInstancesIds", []) or [])
        now = self.clock()
        with self._lock:
            unknown = [i for i in ids if i not in self.reservations]
            if unknown:
                raise EC2ClientError("InvalidReservedInstancesID.NotFound",
                                     f"The Reserved Instances ID '{unknown[0]}' does not exist")
            rows = [self.reserved_instance(r, now) for r in self.reservations.values()
                    if not ids or r.reservation_id in ids]
        keys = {"state": "State", "instance-type": "InstanceType", "availability-zone": "AvailabilityZone",
                "scope": "Scope", "product-description": "ProductDescription", "reserved-instances-id":
                "ReservedInstancesId", "duration": "Duration"}
        for name, values in filters.items():
            if name not in keys:
                raise EC2ClientError("InvalidParameterValue", f"The filter '{name}' is invalid")
            rows = [r for r in rows if str(r.get(keys[name])) in values]
        for param, key in (("OfferingClass", "OfferingClass"), ("OfferingType", "OfferingType")):
            if get(param):
                rows = [r for r in rows if r[key] == get(param)]
        self.requests.append("DescribeReservedInstances")
        return ActionResult({"ReservedInstances": rows})

    def expire(self, reservation_id: str) -> None:
        """The RI's term ends now (it stops covering at once)."""
        with self._lock:
            self.reservations[reservation_id].end = self.clock() - timedelta(seconds=1)

    # --- Savings Plans -----------------------------------------------------------------------------------------
    def sp_offerings(self) -> list[dict[str, Any]]:
        families = sorted({t.split(".", 1)[0] for t in self.types()})
        found = []
        for years in (1, 3):
            for payment in PAYMENTS:
                found.append(self._sp_offering("Compute", years, payment, None))
                found += [self._sp_offering("EC2Instance", years, payment, f) for f in families]
        return found

    def _sp_offering(self, plan_type: str, years: int, payment: str, family: str | None) -> dict[str, Any]:
        properties = [] if family is None else [{"name": "region", "value": self.region},
                                                {"name": "instanceFamily", "value": family}]
        what = "Compute" if family is None else f"EC2 Instance {family} {self.region}"
        return {"offeringId": _id("sp", plan_type, years, payment, family), "productTypes": ["EC2"],
                "planType": plan_type, "description": f"{years} year {payment} {what} Savings Plan",
                "paymentOption": payment, "durationSeconds": years * YEAR, "currency": "USD",
                "serviceCode": "ComputeSavingsPlans" if family is None else "EC2InstanceSavingsPlans",
                "usageType": f"ComputeSP:{years}yr{payment.replace(' ', '')}", "operation": "", "properties":
                properties}

    def rate(self, plan: Plan, instance_type: str) -> float | None:
        offering = plan.offering
        family = next((p["value"] for p in offering["properties"] if p["name"] == "instanceFamily"), None)
        if family is not None and instance_type.split(".", 1)[0] != family:
            return None
        price = self.on_demand(instance_type)
        if price is None:
            return None
        years = offering["durationSeconds"] // YEAR
        discount = SP_DISCOUNT[(offering["planType"], years)] + PAYMENT_BONUS[offering["paymentOption"]]
        return round(price * (1 - discount), 6)

    def savings_plan(self, plan: Plan, now: datetime) -> dict[str, Any]:
        o = plan.offering
        family = next((p["value"] for p in o["properties"] if p["name"] == "instanceFamily"), None)
        hours = o["durationSeconds"] / 3600
        return {
            "offeringId": o["offeringId"], "savingsPlanId": plan.plan_id,
            "savingsPlanArn": f"arn:aws:savingsplans::123456789012:savingsplan/{plan.plan_id}",
            "description": o["description"], "start": _iso(plan.start), "end": _iso(plan.end),
            "state": self._state(plan.start, plan.end, now), "savingsPlanType": o["planType"],
            "paymentOption": o["paymentOption"], "productTypes": ["EC2", "Fargate", "Lambda"] if family is None
            else ["EC2"], "currency": "USD", "commitment": f"{plan.commitment:g}",
            "upfrontPaymentAmount": f"{plan.upfront:g}",
            "recurringPaymentAmount": f"{max(0.0, plan.commitment - plan.upfront / hours):g}",
            "termDurationInSeconds": o["durationSeconds"], "tags": {},
            **({"region": self.region, "ec2InstanceFamily": family} if family else {}),
        }

    def answer_savings_plans(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        """One Savings Plans API call: (status, headers, JSON body)."""
        try:
            result = self._savings_plans_call(operation, body)
        except _ServiceError as error:
            headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error.code}
            return error.status, headers, json.dumps({"message": str(error)})
        self.requests.append(operation)
        return 200, {"Content-Type": "application/json"}, json.dumps(result)

    def _savings_plans_call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        now = self.clock()
        size = body.get("maxResults", 1000)
        if not isinstance(size, int) or not 1 <= size <= 1000:
            raise _ServiceError("ValidationException", f"maxResults must be between 1 and 1000, got {size!r}")
        if operation == "DescribeSavingsPlansOfferings":
            found = [o for o in self.sp_offerings()
                     if (not body.get("planTypes") or o["planType"] in body["planTypes"])
                     and (not body.get("paymentOptions") or o["paymentOption"] in body["paymentOptions"])
                     and (not body.get("durations") or o["durationSeconds"] in body["durations"])
                     and (not body.get("offeringIds") or o["offeringId"] in body["offeringIds"])
                     and all(any(p["name"] == f["name"] and p["value"] in f["values"] for p in o["properties"])
                             for f in body.get("filters", []))]
            page, token = _page(found, body.get("nextToken"), size)
            return {"searchResults": page, **({"nextToken": token} if token else {})}
        if operation == "CreateSavingsPlan":
            return self._create_plan(body, now)
        if operation == "DescribeSavingsPlans":
            with self._lock:
                rows = [self.savings_plan(p, now) for p in self.plans.values()]
            ids, arns, states = body.get("savingsPlanIds"), body.get("savingsPlanArns"), body.get("states")
            if arns and len(arns) > 100:  # AWS: savingsPlanArns has at most 100 members
                raise _ServiceError("ValidationException", f"savingsPlanArns has at most 100 members, got {len(arns)}")
            rows = [r for r in rows if (not ids or r["savingsPlanId"] in ids) and (not states or r["state"] in states)
                    and (not arns or r["savingsPlanArn"] in arns)]
            for flt in body.get("filters", []):
                key = {"region": "region", "ec2-instance-family": "ec2InstanceFamily",
                       "savings-plan-type": "savingsPlanType", "payment-option": "paymentOption"}.get(flt["name"])
                if key is None:
                    raise _ServiceError("ValidationException", f"filter {flt['name']!r} is not supported here")
                rows = [r for r in rows if r.get(key) in flt["values"]]
            page, token = _page(rows, body.get("nextToken"), size)
            return {"savingsPlans": page, **({"nextToken": token} if token else {})}
        if operation == "DescribeSavingsPlanRates":
            return self._rates(body, size)
        raise _ServiceError("ValidationException", f"{operation} is not modeled")

    def _create_plan(self, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        offering = next((o for o in self.sp_offerings() if o["offeringId"] == body.get("savingsPlanOfferingId")), None)
        if offering is None:
            raise _ServiceError("ResourceNotFoundException",
                                f"Savings Plan offering {body.get('savingsPlanOfferingId')!r} not found", 404)
        try:
            commitment = float(body.get("commitment", ""))
        except ValueError:
            commitment = 0.0
        if commitment <= 0:
            raise _ServiceError("ValidationException", f"commitment must be a positive amount, got "
                                                       f"{body.get('commitment')!r}")
        upfront_raw = body.get("upfrontPaymentAmount")
        total = commitment * offering["durationSeconds"] / 3600
        if offering["paymentOption"] == "Partial Upfront":
            if upfront_raw is None:
                raise _ServiceError("ValidationException", "upfrontPaymentAmount is required for Partial Upfront")
            upfront = float(upfront_raw)
        elif upfront_raw is not None:
            raise _ServiceError("ValidationException",
                                "upfrontPaymentAmount is only supported for the Partial Upfront payment option")
        else:
            upfront = total if offering["paymentOption"] == "All Upfront" else 0.0
        token = body.get("clientToken")
        with self._lock:
            same = next((p for p in self.plans.values() if token and p.token == token), None)
            if same is not None:
                return {"savingsPlanId": same.plan_id}
            start = _when(body.get("purchaseTime")) or now
            plan = Plan(str(uuid.uuid4()), offering, commitment, upfront, start,
                        start + timedelta(seconds=offering["durationSeconds"]), token)
            self.plans[plan.plan_id] = plan
        return {"savingsPlanId": plan.plan_id}

    def _rates(self, body: dict[str, Any], size: int) -> dict[str, Any]:
        plan = self.plans.get(str(body.get("savingsPlanId")))
        if plan is None:
            raise _ServiceError("ResourceNotFoundException", f"Savings Plan {body.get('savingsPlanId')!r} not found",
                                404)
        rows: list[dict[str, Any]] = []
        for instance_type in self.types():
            rate = self.rate(plan, instance_type)
            if rate is None:
                continue
            properties = {"region": self.region, "instanceType": instance_type,
                          "instanceFamily": instance_type.split(".", 1)[0], "productDescription": "Linux/UNIX",
                          "tenancy": "shared"}
            rows.append({"rate": f"{rate:.6f}", "currency": "USD", "unit": "Hrs", "productType": "EC2",
                         "serviceCode": "AmazonEC2", "usageType": f"BoxUsage:{instance_type}",
                         "operation": "RunInstances", "properties": [{"name": k, "value": v}
                                                                     for k, v in properties.items()]})
        for flt in body.get("filters", []):
            name, values = flt.get("name"), set(flt.get("values", []))
            if name in ("productType", "serviceCode", "usageType", "operation"):
                rows = [r for r in rows if r[name] in values]
            elif name in ("region", "instanceType", "productDescription", "tenancy"):
                rows = [r for r in rows if any(p["name"] == name and p["value"] in values for p in r["properties"])]
            else:
                raise _ServiceError("ValidationException", f"filter name {name!r} is not valid")
        page, token = _page(rows, body.get("nextToken"), size)
        return {"savingsPlanId": plan.plan_id, "searchResults": page, **({"nextToken": token} if token else {})}

    def expire_plan(self, plan_id: str) -> None:
        with self._lock:
            self.plans[plan_id].end = self.clock() - timedelta(seconds=1)

    # --- wiring ------------------------------------------------------------------------------------------------
    def _patch(self, patches: Patches) -> None:
        model = self
        patches.replace(ReservedInstances,
                        describe_reserved_instances_offerings=lambda response: model._describe_offerings(response),
                        purchase_reserved_instances_offering=lambda response: model._purchase(response),
                        describe_reserved_instances=lambda response: model._describe_reserved(response))

        def process_request(stubber: BotocoreStubber, request: Any) -> Any:
            if "://savingsplans." in request.url:
                operation = request.url.rstrip("/").rsplit("/", 1)[-1]
                return model.answer_savings_plans(operation, json.loads(request.body or b"{}"))
            return patches.original(BotocoreStubber, "process_request")(stubber, request)

        patches.replace(BotocoreStubber, process_request=process_request)


class _ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.status = code, status


def with_savings_plans(app: Any, model: CommitmentsModel) -> Any:
    """WSGI middleware for `local serve`: Savings Plans calls (signed for the `savingsplans` service) are answered
    by the model in front of moto, which has no such service."""

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        if "/savingsplans/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        operation = environ.get("PATH_INFO", "").strip("/")
        status, headers, text = model.answer_savings_plans(operation, body)
        start_response(f"{status} {'OK' if status == 200 else 'Error'}", list(headers.items()))
        return [text.encode()]

    return serve


def _when(raw: Any) -> datetime | None:
    """A purchase time: ISO 8601 text from EC2's query string, epoch seconds from the Savings Plans JSON."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return datetime.fromtimestamp(raw, UTC)
    return request_time(raw)
