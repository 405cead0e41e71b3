"""The embedded AWS as a server (`asg-optimizer local serve`): moto over HTTP with the ASL interpreter on, our
models and Lambda seam installed, and the stack deployed, so this CLI, the AWS CLI and any boto3 script can use
it at http://127.0.0.1:PORT like an account of their own.

Everything runs in this one process: the server's threads answer HTTP, the interpreter's threads run the
executions and call Lambda back through the server (MOTO_PORT), and the handlers run in-process through the
seam, their boto3 clients pointed at the server (AWS_ENDPOINT_URL). Nothing is persisted.
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

import boto3
from moto.server import ThreadedMotoServer

from asg_optimizer.local import seam
from asg_optimizer.local.autoscaling_model import AutoScalingModel
from asg_optimizer.local.ec2_model import Ec2Model
from asg_optimizer.local.embedded import MOTO_CONFIG, REGION, Deployment, deploy, local_environment
from asg_optimizer.local.fleet import GroupSpec, create_group, create_network
from asg_optimizer.stack import DEFAULT_PREFIX, STACK
from tasks.aws import reset_clients


class PortInUse(RuntimeError):
    pass


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
    boot_delay_seconds: float = 2.0
    environment: dict[str, str] = field(default_factory=dict)  # extra variables for every function
    ec2_model: Ec2Model = field(init=False)
    autoscaling_model: AutoScalingModel = field(default_factory=AutoScalingModel)
    deployment: Deployment = field(default_factory=Deployment)
    _server: ThreadedMotoServer | None = None
    _scanner: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.ec2_model = Ec2Model(boot_delay_seconds=self.boot_delay_seconds)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Deployment:
        if not port_free(self.host, self.port):
            raise PortInUse(f"port {self.port} on {self.host} is in use: pick another with --port")
        local_environment(self.region)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request drowns what matters
        os.environ["MOTO_PORT"] = str(self.port)  # the ASL interpreter reaches Lambda through the server
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint  # the handlers' own clients, and deploy() below
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        request = urllib.request.Request(f"{self.endpoint}/moto-api/config", data=json.dumps(MOTO_CONFIG).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        seam.install()
        self.ec2_model.install()
        self.autoscaling_model.install()
        reset_clients()
        self.deployment = deploy(environment=self.environment)
        return self.deployment

    def create_fleet(self, specs: tuple[GroupSpec, ...]) -> dict[str, dict[str, Any]]:
        network = create_network(self.region)
        return {spec.name: create_group(network, spec) for spec in specs}

    def scan_every(self, seconds: float, report: Callable[[str], None]) -> None:
        """Invoke the deployed scanner on a timer, as its schedule does in AWS (only faster)."""
        scanner = STACK.function("scanner").name(DEFAULT_PREFIX)

        def loop() -> None:
            client = boto3.session.Session(region_name=self.region).client("lambda", endpoint_url=self.endpoint)
            while not self._stop.wait(seconds):
                response = client.invoke(FunctionName=scanner, Payload=b"{}")
                body = json.loads(response["Payload"].read() or b"{}")
                if response.get("FunctionError"):
                    report(f"scan failed: {body.get('errorType')}: {body.get('errorMessage')}")
                else:
                    for name in body.get("started", []):
                        report(f"scan started {name}")

        self._scanner = threading.Thread(target=loop, name="local-scan", daemon=True)
        self._scanner.start()

    def stop(self) -> None:
        self._stop.set()
        if self._scanner is not None:
            self._scanner.join(timeout=5)
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.ec2_model.uninstall()
        self.autoscaling_model.uninstall()
        seam.uninstall()
