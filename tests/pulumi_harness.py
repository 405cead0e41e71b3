"""Run the Pulumi program against Pulumi's own mocks (preview=False) and record every resource it registers.

The mocks are process-global Pulumi state; `deploy_with_mocks` installs them, runs one program, resolves its
outputs and then resets the runtime (settings, root stack, config), so nothing leaks into other tests.
"""

from __future__ import annotations

import runpy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings as runtime_settings

ACCOUNT = "123456789012"
REGION = "eu-west-1"
PARTITION = "aws"
PROJECT = "asg-optimizer"


@dataclass(frozen=True)
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]
    region: str = REGION  # the region of the provider it was registered with (the default provider's: REGION)


@dataclass
class Deployment:
    """What one mocked `pulumi up` registered: resources in order, resolved outputs, the built object."""

    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    built: Any = None

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str) -> Registered:
        found = [r for r in self.of_type(typ) if r.name == name]
        assert len(found) == 1, f"expected one {typ} named {name}, found {len(found)}"
        return found[0]


def _arn(service: str, resource: str, *, region: str | None = REGION) -> str:
    return f"arn:{PARTITION}:{service}:{region or ''}:{ACCOUNT}:{resource}"


class RecordingMocks(pulumi.runtime.Mocks):
    """Physical outputs the way AWS would report them, derived from the explicit names the program sets."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.provider_regions: dict[str, str] = {}  # explicit provider id -> its region

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        if args.typ == "pulumi:providers:aws":
            self.provider_regions[f"{args.name}-provider-id"] = inputs.get("region", REGION)
            self.deployment.resources.append(Registered(args.typ, args.name, inputs, inputs.get("region", REGION)))
            return f"{args.name}-provider-id", inputs
        # A provider reference is "<urn>::<id>"; none (or the default provider's) deploys into REGION.
        region = self.provider_regions.get((args.provider or "").rsplit("::", 1)[-1], REGION)
        self.deployment.resources.append(Registered(args.typ, args.name, inputs, region))
        name = inputs.get("name") or args.name
        computed: dict[str, Any] = {
            "aws:lambda/function:Function": {"arn": _arn("lambda", f"function:{name}", region=region)},
            "aws:sfn/stateMachine:StateMachine": {"arn": _arn("states", f"stateMachine:{name}", region=region)},
            "aws:iam/role:Role": {"arn": _arn("iam", f"role/{name}", region=None)},
            "aws:sqs/queue:Queue": {"arn": _arn("sqs", name, region=region),
                                    "url": f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{name}"},
            "aws:cloudwatch/logGroup:LogGroup": {"arn": _arn("logs", f"log-group:{name}", region=region)},
            "aws:cloudwatch/eventRule:EventRule": {"arn": _arn("events", f"rule/{name}", region=region)},
            "aws:sns/topic:Topic": {"arn": _arn("sns", name, region=region)},
        }.get(args.typ, {})
        return f"{name}-id", {**inputs, "name": name, **computed}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        results: dict[str, dict[str, Any]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/test", "userId": "AIDTEST", "id": ACCOUNT},
            "aws:index/getRegion:getRegion": {"region": REGION, "name": REGION, "id": REGION,
                                              "endpoint": f"ec2.{REGION}.amazonaws.com", "description": "test"},
            "aws:index/getPartition:getPartition": {"partition": PARTITION, "dnsSuffix": "amazonaws.com",
                                                    "id": PARTITION, "reverseDnsPrefix": "com.amazonaws"},
        }
        if args.token not in results:
            raise AssertionError(f"unexpected invoke {args.token}")
        return results[args.token]


def deploy_with_mocks(build: Callable[[], Any] | None = None, *, config: dict[str, str] | None = None,
                      program: str | None = None, into: Deployment | None = None) -> Deployment:
    """Run `build()` (returns an object with `.outputs`) or the program file `program` under fresh mocks.

    `config` holds stack config as `pulumi config` would pass it (`asg-optimizer:key` -> string). `into`
    receives the registrations even when the program raises (to prove a bad input registered nothing).
    """
    deployment = into if into is not None else Deployment()
    runtime_config.set_all_config(dict(config or {}))
    pulumi.runtime.set_mocks(RecordingMocks(deployment), project=PROJECT, stack="test", preview=False)
    try:

        @pulumi.runtime.test
        def run() -> pulumi.Output[Any]:
            if program is not None:
                runpy.run_path(program, run_name="__main__")
                root = runtime_settings.get_root_resource()
                outputs = dict(root.outputs)  # type: ignore[union-attr]
            else:
                deployment.built = build() if build else None
                outputs = dict(deployment.built.outputs)
            return pulumi.Output.from_input(outputs).apply(deployment.outputs.update)

        run()
    finally:
        runtime_settings.reset_options()
        runtime_config.set_all_config({})
    return deployment
