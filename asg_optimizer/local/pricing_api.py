"""The AWS Pricing API for the embedded AWS (moto has none): GetProducts for EC2, answered from the bundled price
snapshot in the real response shape (PriceList of JSON strings, `terms.OnDemand.*.priceDimensions.*`), so the
optimizer's own Pricing API code runs locally. Set `available = False` to model an unreachable or denied API.

Hooked into moto's request stubber, the one place every mocked boto3 call passes, so no request can leave.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from moto.core.botocore_stubber import BotocoreStubber

from asg_optimizer.local.patching import Patches, Patching
from tasks.aws.prices import snapshot
from tasks.core.prices import OPERATING_SYSTEMS, snapshot_price

_OS_BY_PRICING_NAME = {os.pricing_name: os for os in OPERATING_SYSTEMS.values()}


def product_entry(region: str, instance_type: str, operating_system: str, price: float) -> str:
    sku = f"SKU{zlib.crc32(f'{region}|{instance_type}|{operating_system}'.encode()):010d}"
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": instance_type, "regionCode": region, "operatingSystem": operating_system,
            "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
            "licenseModel": "No License required", "servicecode": "AmazonEC2"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "offerTermCode": "JRTCKXETXF", "sku": sku, "effectiveDate": f"{snapshot()['as_of']}-01T00:00:00Z",
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "pricePerUnit": {"USD": f"{price:.10f}"},
                "description": f"${price:g} per On Demand {operating_system} {instance_type} Instance Hour"}}}}},
        "version": "local", "publicationDate": f"{snapshot()['as_of']}-01T00:00:00Z",
    })


@dataclass
class PricingApiModel(Patching):
    available: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    _patches: Patches = field(default_factory=Patches)

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        self.requests.append(body)
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        if not self.available:
            return 400, headers, json.dumps({"__type": "AccessDeniedException",
                                             "Message": "User is not authorized to perform: pricing:GetProducts"})
        wanted = {f["Field"]: f["Value"] for f in body.get("Filters", [])}
        os = _OS_BY_PRICING_NAME.get(wanted.get("operatingSystem", ""))
        price = None
        if body.get("ServiceCode") == "AmazonEC2" and os is not None:
            price = snapshot_price(snapshot(), wanted.get("regionCode", ""), wanted.get("instanceType", ""), os)
        entries = [] if price is None or os is None else [
            product_entry(wanted["regionCode"], wanted["instanceType"], os.pricing_name, price)
        ]
        return 200, headers, json.dumps({"FormatVersion": "aws_v1", "PriceList": entries})

    def _patch(self, patches: Patches) -> None:
        model = self

        def process_request(stubber: BotocoreStubber, request: Any) -> Any:
            if "://api.pricing." in request.url:
                target = request.headers.get("X-Amz-Target", b"")
                target = target.decode() if isinstance(target, bytes) else target
                if target.endswith(".GetProducts"):
                    return model.answer(json.loads(request.body or b"{}"))
                return 400, {}, json.dumps({"__type": "InvalidParameterException", "Message": f"{target} not modeled"})
            return patches.original(BotocoreStubber, "process_request")(stubber, request)

        patches.replace(BotocoreStubber, process_request=process_request)
