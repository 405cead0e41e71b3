"""`asg-optimizer local ...`: the embedded AWS on this machine, no account needed."""

from __future__ import annotations

import gc
import json
import signal
import threading
import time
from types import FrameType
from typing import Any

import typer
from rich.console import Console

from asg_optimizer.aws_session import CliError
from asg_optimizer.commands.execution_view import header, outcome_lines
from asg_optimizer.commands.output import console, fail, now, operator_command, print_json, settings
from asg_optimizer.commands.replace import follow
from asg_optimizer.inventory import instances
from stack.description import DEFAULT_PREFIX
from tasks.core.interruption import NOTICE_SECONDS

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
    spot_notice: int = typer.Option(120, "--spot-notice", min=1, metavar="SECONDS",
                                    help="The interruption notice EC2 gives a spot here (EC2's own: 120)."),
) -> None:
    """Serve the embedded AWS with the stack deployed at http://HOST:PORT until Ctrl-C."""
    from asg_optimizer.demo.run import DEMO_FLEET
    from asg_optimizer.local.server import LocalServer, PortInUse
    from tasks.core.settings import SPOT_NOTICE_SECONDS

    given = settings(ctx).regions or ["us-east-1"]
    for name in given:
        try:
            settings(ctx).target.check_region(name)
        except CliError as error:
            raise fail(str(error)) from None
    region = given[0]
    server = LocalServer(host=host, port=port, region=region, other_regions=tuple(given[1:]),
                         boot_delay_seconds=boot_delay, environment={SPOT_NOTICE_SECONDS.name: str(spot_notice)})
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
        say(f"asg-optimizer local AWS on {endpoint} (region {', '.join(given)}), stack deployed:")
        for arn in sorted(a for d in server.deployments.values() for a in d.state_machine_arns.values()):
            say(f"  state machine  {arn}")
        say(f"  functions      {len(deployment.function_arns)}, named {DEFAULT_PREFIX}-<key>: "
            f"{', '.join(sorted(deployment.function_arns))}")
        for fleet_region in given if demo_fleet else []:  # the demo's groups in every region served
            groups = server.create_fleet(DEMO_FLEET, fleet_region)
            described = ", ".join(
                f"{spec.name} ({len(groups[spec.name]['Instances'])} on-demand"
                f"{'' if spec.opted_in else ', not opted in'})" for spec in DEMO_FLEET)
            say(f"  demo fleet     {described}" + (f" in {fleet_region}" if len(given) > 1 else ""))
        if scan_every:
            server.scan_every(scan_every, say)
            say(f"  scanner        every {scan_every:g}s")
        several = "".join(f" --region {r}" for r in given) if len(given) > 1 else ""
        say(f"Try:  asg-optimizer --endpoint-url {endpoint}{several} status")
        # The AWS CLI and boto3 want a region and some credentials (any value signs for the local server).
        dummy = f"AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION={region}"
        say(f"      {dummy} aws --endpoint-url {endpoint} stepfunctions list-state-machines")
        say(f"      {dummy} AWS_ENDPOINT_URL={endpoint} python your_script.py")
        say("ready; Ctrl-C stops it (everything is in memory)")
        stopped.wait()
    finally:
        server.stop()
    say("stopped")
    # Exit without the interpreter's final collection of moto's whole heap: it took 1.4 s of the 1.5 s a stop
    # took on a quiet machine, CPU-bound, so under load it alone could outlast any bound on stopping.
    gc.freeze()


NOT_LOCAL = ("local interrupt fakes an EC2 event and terminates the instance, so it only talks to `asg-optimizer local "
             "serve`: pass --endpoint-url http://127.0.0.1:4566 (or set AWS_ENDPOINT_URL)")


@app.command()
@operator_command
def interrupt(
    ctx: typer.Context,
    instance_id: str = typer.Argument(..., metavar="INSTANCE_ID", help="A spot instance in the local AWS."),
    rebalance: bool = typer.Option(False, "--rebalance", help="A rebalance recommendation instead of a warning."),
    reclaim: bool = typer.Option(
        True, "--reclaim/--no-reclaim",
        help=f"After the warning, terminate the spot when its notice ends, as EC2 does: the notice the deployed "
             f"function gives ({NOTICE_SECONDS} s unless `local serve --spot-notice` set another), counted from the "
             "warning, or once the fallback has ended if that is later. --no-reclaim leaves it running."),
    follow_it: bool = typer.Option(
        True, "--follow/--no-follow",
        help="Follow the execution the event started (the fallback, or a rebalance's swap) to its end and say how "
             "it ended; one line per state when not on a terminal."),
) -> None:
    """Send a spot's interruption warning (or rebalance recommendation) to `local serve`, as EC2 would, follow
    what it started, then reclaim the spot at the end of its notice. Exit 1 if that execution did not succeed."""
    from asg_optimizer.local.events import rules_for, spot_event
    from tasks.core.settings import SPOT_NOTICE_SECONDS

    options = settings(ctx)
    target = options.target
    if len(options.regions) > 1:
        raise CliError(f"--region given {len(options.regions)} times ({', '.join(options.regions)}): local "
                       "interrupt sends one event, in the spot's region: give that one")
    if not target.local:
        raise CliError(NOT_LOCAL)
    found = instances(target, [instance_id]).get(instance_id)
    if found is None:
        raise CliError(f"instance {instance_id} does not exist in {target.endpoint}")
    if found.get("InstanceLifecycle") != "spot":
        raise CliError(f"instance {instance_id} is on-demand: only spot instances get interruption warnings")
    if found["State"]["Name"] not in ("pending", "running"):
        raise CliError(f"instance {instance_id} is {found['State']['Name']}, not running")
    event = spot_event(instance_id, found["Placement"]["AvailabilityZone"], rebalance=rebalance)
    sent = time.monotonic()
    results: dict[str, Any] = {}
    notice = NOTICE_SECONDS
    out = console() if not options.json else Console(quiet=True)
    for rule in rules_for(event):
        results[rule.key] = target.invoke(rule.function, event)
        config = target.client("lambda").get_function_configuration(FunctionName=target.function_name(rule.function))
        notice = int(config.get("Environment", {}).get("Variables", {}).get(SPOT_NOTICE_SECONDS.name, notice))
        say_unless(options.json, f"{event['detail-type']} for {instance_id} -> {target.function_name(rule.function)}: "
                   f"{json.dumps(results[rule.key], sort_keys=True)}")
    reclaiming = reclaim and not rebalance
    if reclaiming:
        say_unless(options.json, f"EC2 takes {instance_id} back in {notice}s (Ctrl-C leaves it running)")
    timeline = None
    started = [r["execution_name"] for r in results.values() if isinstance(r.get("execution_name"), str)]
    try:
        if follow_it and started:
            machine = target.interruption_machine_arn() if not rebalance else target.state_machine_arn()
            arn = str(machine).replace(":stateMachine:", ":execution:", 1) + ":" + started[0]
            kind = "swap" if rebalance else "fallback"
            say_unless(options.json, f"Following the {kind} {started[0]} (asg-optimizer show {started[0]}: its "
                                     "timeline)")
            timeline = follow(target, arn, out)
            at = now()
            out.print(header(timeline))
            for line in outcome_lines(timeline, at):
                out.print(line)
        reclaimed = None
        if reclaiming:
            time.sleep(max(0.0, notice - (time.monotonic() - sent)))
            target.client("ec2").terminate_instances(InstanceIds=[instance_id])
            reclaimed = round(time.monotonic() - sent, 1)
            say_unless(options.json, f"{instance_id} reclaimed after {reclaimed}s")
    except KeyboardInterrupt:
        typer.echo(f"{instance_id} left running", err=True)
        raise typer.Exit(130) from None
    if options.json:
        print_json({"event": event, "results": results, "reclaimed_after_seconds": reclaimed,
                    "execution": timeline.as_dict(now(), target.region_name) if timeline else None})
    if timeline is not None and timeline.status != "SUCCEEDED":
        raise typer.Exit(1)


def say_unless(quiet: bool, line: str) -> None:
    if not quiet:
        typer.echo(line)
