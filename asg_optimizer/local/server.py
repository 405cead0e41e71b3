"""The embedded AWS as a server (`asg-optimizer local serve`): moto over HTTP with the ASL interpreter on, our
models and Lambda seam installed, and the stack deployed, so this CLI, the AWS CLI and any boto3 script can use
it at http://127.0.0.1:PORT like an account of their own.

Everything runs in this one process: the server's threads answer HTTP, the interpreter's threads run the
executions and call Lambda back through the server (MOTO_PORT), and the handlers run in-process through the
seam, their boto3 clients pointed at the server (AWS_ENDPOINT_URL). moto has no Pricing API and no Savings Plans:
GetProducts and the Savings Plans calls are answered in front of it (the snapshot; asg_optimizer.local.
commitments_model), as the in-process embedded AWS does. Nothing is persisted.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from asg_optimizer import sessions
from asg_optimizer.local import asl_interpreter, interleaving, metrics_sink, moto_costs, seam, zone_balance
from asg_optimizer.local.autoscaling_model import AutoScalingModel
from asg_optimizer.local.commitments_model import CommitmentsModel, with_savings_plans
from asg_optimizer.local.ec2_model import Ec2Model
from asg_optimizer.local.embedded import MOTO_CONFIG, REGION, Deployment, deploy, local_environment
from asg_optimizer.local.group_builder import GroupSpec, create_group, create_network
from asg_optimizer.local.pricing_api import PricingApiModel
from stack.description import DEFAULT_PREFIX, STACK
from tasks.aws.clients import reset_clients


class PortInUse(RuntimeError):
    pass


PRICING_TARGET = "AWSPriceListService.GetProducts"


def with_pricing_api(app: Any, pricing: PricingApiModel) -> Any:
    """WSGI middleware: answer the Pricing API's GetProducts (moto has no Pricing API) from the bundled snapshot,
    as the embedded AWS does in-process, so the handlers' and the CLI's price lookups work against the server."""

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET") != PRICING_TARGET:
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        status, headers, text = pricing.answer(body)
        start_response(f"{status} {'OK' if status == 200 else 'Bad Request'}", list(headers.items()))
        return [text.encode()]

    return serve


class _MotoServer(ThreadedMotoServer):
    """moto's threaded server with the Pricing API and Savings Plans answered in front of it (same wiring as moto's
    own entry)."""

    def __init__(self, host: str, port: int, pricing: PricingApiModel, commitments: CommitmentsModel) -> None:
        super().__init__(ip_address=host, port=port, verbose=False)
        self._pricing, self._commitments = pricing, commitments

    def _server_entry(self) -> None:
        # Each request is one atomic call, as in-process; handlers interleave between their calls.
        app = interleaving.atomic_requests(
            with_savings_plans(with_pricing_api(DomainDispatcherApplication(create_backend_app), self._pricing),
                               self._commitments))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class LocalServer:
    host: str = "127.0.0.1"
    port: int = 4566
    region: str = REGION
    other_regions: tuple[str, ...] = ()  # more regions of the account with the stack deployed (moto serves all)
    boot_delay_seconds: float = 2.0
    environment: dict[str, str] = field(default_factory=dict)  # extra variables for every function
    ec2_model: Ec2Model = field(init=False)
    autoscaling_model: AutoScalingModel = field(default_factory=AutoScalingModel)
    pricing_api: PricingApiModel = field(default_factory=PricingApiModel)
    commitments_model: CommitmentsModel = field(default_factory=CommitmentsModel)
    deployment: Deployment = field(default_factory=Deployment)
    deployments: dict[str, Deployment] = field(default_factory=dict)  # by region
    _server: _MotoServer | None = None
    _internal: _MotoServer | None = None
    _scanner: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.ec2_model = Ec2Model(boot_delay_seconds=self.boot_delay_seconds)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Deployment:
        """Deploy on an internal port first, then open the public one: a client that connects as soon as the port
        accepts finds the stack deployed (the functions and the interpreter keep using the internal port)."""
        if not port_free(self.host, self.port):
            raise PortInUse(f"port {self.port} on {self.host} is in use: pick another with --port")
        local_environment(self.region)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request drowns what matters
        internal_port = free_port(self.host)
        internal = f"http://{self.host}:{internal_port}"
        os.environ["MOTO_PORT"] = str(internal_port)  # the ASL interpreter reaches Lambda through the server
        os.environ["AWS_ENDPOINT_URL"] = internal  # the handlers' own clients, and deploy() below
        self.commitments_model.region = self.region
        self._internal = _MotoServer(self.host, internal_port, self.pricing_api, self.commitments_model)
        self._internal.start()
        request = urllib.request.Request(f"{internal}/moto-api/config", data=json.dumps(MOTO_CONFIG).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        moto_costs.install()
        seam.install()
        asl_interpreter.install()
        self.ec2_model.install()
        self.autoscaling_model.install()
        metrics_sink.install()  # the functions' metric lines stay out of the server's output
        zone_balance.install()  # instances spread over the group's zones, as in-process and in AWS
        self.commitments_model.install()
        reset_clients()
        self.deployment = deploy(environment=self.environment)
        self.deployments = {self.region: self.deployment}
        for region in self.other_regions:  # the same stack in each: functions run with their region's clients
            self.deployments[region] = deploy(environment=self.environment, region=region)
        self._server = _MotoServer(self.host, self.port, self.pricing_api, self.commitments_model)
        self._server.start()
        return self.deployment

    @property
    def regions(self) -> tuple[str, ...]:
        return (self.region, *self.other_regions)

    def create_fleet(self, specs: tuple[GroupSpec, ...], region: str | None = None) -> dict[str, dict[str, Any]]:
        network = create_network(region or self.region)
        return {spec.name: create_group(network, spec) for spec in specs}

    def scan_every(self, seconds: float, report: Callable[[str], None]) -> None:
        """Invoke the deployed scanner on a timer, as its schedule does in AWS (only faster)."""
        scanner = STACK.function("scanner").name(DEFAULT_PREFIX)

        def loop() -> None:
            clients = {region: sessions.session(region_name=region).client("lambda", endpoint_url=self.endpoint)
                       for region in self.regions}
            where = (lambda region: f" in {region}") if self.other_regions else (lambda region: "")
            while not self._stop.wait(seconds):
                for region, client in clients.items():  # each region's scanner in turn, as each schedule would
                    try:
                        response = client.invoke(FunctionName=scanner, Payload=b"{}")
                        body = json.loads(response["Payload"].read() or b"{}")
                    except Exception:
                        if self._stop.is_set():
                            return  # the server stopped under a scan in flight: nothing to report
                        raise
                    if self._stop.is_set():
                        return
                    if response.get("FunctionError"):
                        report(f"scan failed{where(region)}: {body.get('errorType')}: {body.get('errorMessage')}")
                    else:
                        for name in body.get("started", []):
                            report(f"scan started {name}{where(region)}")

        self._scanner = threading.Thread(target=loop, name="local-scan", daemon=True)
        self._scanner.start()

    def stop(self) -> None:
        self._stop.set()  # a scan in flight is not waited for (its thread is a daemon): stopping takes no longer
        self._scanner = None  # under load than on a quiet machine
        for server in (self._server, self._internal):
            if server is not None:
                server.stop()
        self._server = self._internal = None
        self.ec2_model.uninstall()
        zone_balance.uninstall()
        metrics_sink.uninstall()
        self.autoscaling_model.uninstall()
        self.commitments_model.uninstall()
        # The process ends with the server: no later moto here could meet a handler still in flight, so none is
        # waited for (its calls to the stopped server retry: under load a wait ran past the tests' 60 s bound).
        seam.uninstall(drain_seconds=0)
        asl_interpreter.uninstall()
        moto_costs.uninstall()
