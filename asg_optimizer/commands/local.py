"""`asg-optimizer local ...`: the embedded AWS on this machine, no account needed."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer

from asg_optimizer.commands.output import fail, settings

app = typer.Typer(no_args_is_help=True, help="The embedded AWS on this machine (no account needed).")


def say(line: str) -> None:
    typer.echo(line)


@app.command()
def serve(
    ctx: typer.Context,
    port: int = typer.Option(4566, "--port", min=1, max=65535, help="TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    scan_every: float | None = typer.Option(None, "--scan-every", metavar="SECONDS", min=1,
                                            help="Run the deployed scanner this often (off by default)."),
    demo_fleet: bool = typer.Option(False, "--demo-fleet", help="Create the demo's Auto Scaling groups."),
    boot_delay: float = typer.Option(2.0, "--boot-delay", min=0,
                                     help="Seconds a new instance reports status checks 'initializing'."),
) -> None:
    """Serve the embedded AWS with the stack deployed at http://HOST:PORT until Ctrl-C."""
    from asg_optimizer.demo import DEMO_FLEET
    from asg_optimizer.local.server import LocalServer, PortInUse

    region = settings(ctx).target.region or "us-east-1"
    server = LocalServer(host=host, port=port, region=region, boot_delay_seconds=boot_delay)
    try:
        deployment = server.start()
    except PortInUse as error:
        raise fail(str(error)) from None
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        endpoint = server.endpoint
        say(f"asg-optimizer local AWS on {endpoint} (region {region}), stack deployed:")
        say(f"  state machine  {deployment.replace_arn}")
        say(f"  functions      {', '.join(sorted(a.rsplit(':', 1)[-1] for a in deployment.function_arns.values()))}")
        if demo_fleet:
            groups = server.create_fleet(DEMO_FLEET)
            described = ", ".join(
                f"{spec.name} ({len(groups[spec.name]['Instances'])} on-demand"
                f"{'' if spec.opted_in else ', not opted in'})" for spec in DEMO_FLEET)
            say(f"  demo fleet     {described}")
        if scan_every:
            server.scan_every(scan_every, say)
            say(f"  scanner        every {scan_every:g}s")
        say(f"Try:  asg-optimizer --endpoint-url {endpoint} status")
        say(f"      aws --endpoint-url {endpoint} stepfunctions list-state-machines")
        say(f"      AWS_ENDPOINT_URL={endpoint} python your_script.py")
        say("ready; Ctrl-C stops it (everything is in memory)")
        stopped.wait()
    finally:
        server.stop()
    say("stopped")
