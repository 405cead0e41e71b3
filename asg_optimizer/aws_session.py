"""The CLI's global options as one boto3 session, and the deployed stack found by its naming convention.

Every command reads AWS through `Target`: one session (--profile, --region), one endpoint (--endpoint-url, else
the standard AWS_ENDPOINT_URL that boto3 reads itself), and the state machine and functions named as
stack.description names them (`<prefix>-replace-instance`, `<prefix>-scanner`, ...), so an operator never has
to paste an ARN. Problems the operator can fix become `CliError`: one line, exit code 2, nothing changed.
"""

from __future__ import annotations

import difflib
import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from botocore.config import Config
from botocore.exceptions import ClientError, ProfileNotFound

from asg_optimizer import sessions
from asg_optimizer.timeline import console_url
from stack.description import DEFAULT_PREFIX, INTERRUPTION, REPLACE, STACK

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
LOCAL_REGION = "us-east-1"
DEFAULT_PORT = 4566
_CONFIG = Config(retries={"mode": "standard"})
PRICING_REGION = "us-east-1"
_PRICING_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 2})


class CliError(Exception):
    """A problem the operator can fix; the message is the one line they see. Nothing was changed."""

    exit_code = 2


class AwsFailed(CliError):
    """AWS refused or failed a call we expected to work (not the operator's input)."""

    exit_code = 1


NO_CREDENTIALS = (
    "no AWS credentials found (profile, environment or instance role): configure them, pass --profile, or try it "
    f"without an account: run `asg-optimizer local serve` and add --endpoint-url http://127.0.0.1:{DEFAULT_PORT}"
)


def no_state_machine(name: str, region: str) -> str:
    return (
        f"no deployed state machine {name} in {region}: deploy the stack (`pulumi up`, see README), pass --region "
        f"or --prefix to find yours, or point at one with --state-machine-arn"
    )


def known_regions() -> set[str]:
    """Every region botocore knows, in every partition (commercial, China, GovCloud, ...)."""
    probe = sessions.session(region_name=LOCAL_REGION)
    return {r for partition in probe.get_available_partitions()
            for r in probe.get_available_regions("ec2", partition_name=partition)}


@dataclass
class Target:
    """Where the CLI talks to; built from the global options, sessions and clients made on first use."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    state_machine: str | None = None  # --state-machine-arn
    prefix: str = DEFAULT_PREFIX
    _session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)
    _state_machine_arn: str | None = None
    _machines: dict[str, str] | None = None  # every state machine in the region, name -> ARN

    @property
    def endpoint(self) -> str | None:
        """The endpoint every client uses: --endpoint-url, else AWS_ENDPOINT_URL (boto3 applies that one itself)."""
        return self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None

    @property
    def local(self) -> bool:
        """Talking to `asg-optimizer local serve` (or any emulator on this machine): no account needed."""
        endpoint = self.endpoint
        return bool(endpoint) and urlparse(endpoint).hostname in LOCAL_HOSTS

    def check_endpoint(self) -> None:
        """An endpoint must be a URL with a scheme and a host (`127.0.0.1:4566` alone is not one)."""
        endpoint = self.endpoint
        if endpoint is None:
            return
        parsed = urlparse(endpoint)
        source = "--endpoint-url" if self.endpoint_url else "AWS_ENDPOINT_URL"
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise CliError(f"{source} {endpoint!r} is not a URL: give the scheme and host, e.g. "
                           f"http://{endpoint if '://' not in endpoint else '127.0.0.1:4566'}")

    def check_reachable(self) -> None:
        """Before blaming credentials, make sure the endpoint answers at all."""
        endpoint = self.endpoint
        if endpoint is None:
            return
        parsed = urlparse(endpoint)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=3).close()
        except OSError as error:
            source = "--endpoint-url" if self.endpoint_url else "AWS_ENDPOINT_URL"
            hint = " (is `asg-optimizer local serve` running?)" if self.local else ""
            raise CliError(f"cannot reach {source} {endpoint}: {error.strerror or error}{hint}") from None

    def check_region(self, region: str) -> None:
        known = known_regions()
        if region not in known:
            close = difflib.get_close_matches(region, sorted(known), n=1)
            raise CliError(f"--region {region!r} is not an AWS region" +
                           (f": did you mean {close[0]}?" if close else ", e.g. us-east-1"))

    @property
    def session(self) -> Any:
        if self._session is None:
            self.check_endpoint()
            if self.region is not None:
                self.check_region(self.region)
            try:
                probe = sessions.session(profile_name=self.profile, region_name=self.region)
            except ProfileNotFound:
                raise CliError(f"AWS profile {self.profile!r} not found in ~/.aws/config or ~/.aws/credentials") \
                    from None
            if probe.get_credentials() is None and not self.local:
                self.check_reachable()
                raise CliError(NO_CREDENTIALS)
            region = probe.region_name or (LOCAL_REGION if self.local else None)
            if region is None:
                raise CliError("no AWS region: pass --region or set AWS_REGION (or a region in your profile)")
            if probe.get_credentials() is None:  # a local emulator checks no signature: any key signs for it
                self._session = sessions.session(aws_access_key_id="local", aws_secret_access_key="local",
                                                      region_name=region)
            else:
                self._session = sessions.session(profile_name=self.profile, region_name=region)
        return self._session

    @property
    def region_name(self) -> str:
        return str(self.session.region_name or LOCAL_REGION)

    def client(self, service: str) -> Any:
        if service == "pricing":  # answered in us-east-1 only; a quick fallback to the snapshot where unreachable
            service_region, config = PRICING_REGION, _PRICING_CONFIG
        else:
            service_region, config = self.region_name, _CONFIG
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self.endpoint_url or None, region_name=service_region, config=config
            )
        return self._clients[service]

    def function_name(self, key: str) -> str:
        return STACK.function(key).name(self.prefix)

    @property
    def state_machine_name(self) -> str:
        return STACK.state_machine(REPLACE).name(self.prefix)

    def state_machine_arn(self) -> str:
        """--state-machine-arn (checked to exist), else the one named `<prefix>-replace-instance`."""
        if self._state_machine_arn is None:
            sfn = self.client("stepfunctions")
            if self.state_machine:
                try:
                    sfn.describe_state_machine(stateMachineArn=self.state_machine)
                except ClientError as error:
                    if error.response.get("Error", {}).get("Code") in ("StateMachineDoesNotExist", "InvalidArn"):
                        raise CliError(f"state machine {self.state_machine} does not exist "
                                       f"({error.response['Error']['Code']})") from None
                    raise
                self._state_machine_arn = self.state_machine
            else:
                wanted = self.state_machine_name
                found = self.machines().get(wanted)
                if found is None:
                    raise CliError(no_state_machine(wanted, self.region_name))
                self._state_machine_arn = found
        return self._state_machine_arn

    def machines(self) -> dict[str, str]:
        """Every state machine in the region by name (one paginated listing, read once)."""
        if self._machines is None:
            pages = self.client("stepfunctions").get_paginator("list_state_machines").paginate()
            self._machines = {m["name"]: m["stateMachineArn"] for page in pages for m in page["stateMachines"]}
        return self._machines

    def interruption_machine_arn(self) -> str | None:
        """The interruption fallback's state machine, `<prefix>-spot-interruption` beside the replacement one
        (None for a stack without it)."""
        return self.machines().get(STACK.state_machine(INTERRUPTION).name(self.prefix))

    def execution_arn(self, name_or_arn: str) -> str:
        """An execution ARN from an ARN or a name of an execution of our state machine."""
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        machine = self.state_machine_arn()
        return machine.replace(":stateMachine:", ":execution:", 1) + ":" + name_or_arn

    def console_url(self, execution_arn: str) -> str | None:
        """The execution in the Step Functions console; None against `local serve` (no console there)."""
        return None if self.local else console_url(self.region_name, execution_arn)

    def invoke(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Run one of the stack's functions now (the scanner's dry run, the sweep) and return its result."""
        name = self.function_name(key)
        try:
            response = self.client("lambda").invoke(FunctionName=name, Payload=json.dumps(payload))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise CliError(f"no deployed function {name} in {self.region_name}: deploy the stack (`pulumi up`, "
                               "see README), or pass --region or --prefix to find yours") from None
            raise
        raw = response["Payload"].read()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode(errors="replace")
        if response.get("FunctionError"):
            if isinstance(body, dict):
                raise AwsFailed(f"{name} failed: {body.get('errorType', 'Error')}: {body.get('errorMessage', body)}")
            raise AwsFailed(f"{name} failed: {body}")
        if not isinstance(body, dict):
            raise AwsFailed(f"{name} returned {body!r}, expected a JSON object")
        return body
