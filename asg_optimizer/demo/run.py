"""`asg-optimizer demo`: a fleet in the embedded AWS, every eligible on-demand instance swapped to spot while you
watch, then a before/after table. Exits non-zero if any safety invariant was broken."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from asg_optimizer.demo.commitments import CommitmentsRun, run_commitments
from asg_optimizer.demo.execution_state import current_state
from asg_optimizer.demo.fleet_cost import fleet_hourly_cost
from asg_optimizer.demo.rollout import RolloutRun, run_rollout
from asg_optimizer.local.clock import RealClock
from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.events import InterruptionRun, run_interruption
from asg_optimizer.local.group_builder import GroupSpec, create_group, create_network, create_target_group
from asg_optimizer.local.invariants import InvariantChecker
from asg_optimizer.local.scheduler import Scheduler

DEMO_FLEET = (
    GroupSpec("web", desired=3, max_size=6, instance_type="m5.large", extra_tags={"AsgOptimiser:MaxParallel": "3"}),
    GroupSpec("workers", desired=2, max_size=2, instance_type="c5.xlarge",
              extra_tags={"AsgOptimiser:MaxParallel": "2"}),
    GroupSpec("legacy-db", desired=2, max_size=3, instance_type="r5.large", opted_in=False),
)
# The shortest polls AWS gets (2 s), waited at half length (DEMO_WAIT_SCALE): a poll a second, as the demo shows.
DEMO_TIMING = {"boot_poll_seconds": 2, "boot_max_polls": 20, "group_poll_seconds": 2, "group_max_polls": 10,
               "lb_poll_seconds": 2, "lb_max_polls": 30}
DEMO_WAIT_SCALE = 0.5
MAX_SCANS = 5
INTERRUPTED_GROUP = "web"
ROLLOUT_GROUP = "workers"  # its spots are rolled to a new AMI (launch template version 2) at the end
WEB_GROUP = "web"  # behind a target group: health checks of 5 s x 2, a 30 s deregistration delay
# Load-balancer time runs 10x: a target's 10 s of health checks take 1 s, its 30 s of draining 3 s.
DEMO_CLOCK_SCALE = 10.0


@dataclass
class GroupReport:
    asg_name: str
    opted_in: bool
    desired: int
    on_demand_before: int
    spot_before: int
    on_demand_after: int = 0
    spot_after: int = 0
    succeeded: int = 0
    failed: int = 0
    lowest_in_service: int = 0
    lowest_healthy: int | None = None  # behind a load balancer: the fewest healthy targets at any sample
    desired_after: int = 0
    max_size_restored: bool = True


@dataclass
class DemoReport:
    groups: list[GroupReport] = field(default_factory=list)
    executions: list[dict[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    scans: int = 0
    hourly_cost_before: float = 0.0
    hourly_cost_after: float = 0.0
    saving_percent: float = 0.0
    interruption: InterruptionRun | None = None
    commitments: CommitmentsRun | None = None
    rollout: RolloutRun | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every opted-in on-demand swapped, never below desired, settings restored, the rest untouched."""
        if self.violations or (self.commitments and not self.commitments.ok) or (self.rollout and not self.rollout.ok):
            return False
        if self.interruption and (self.interruption.status != "SUCCEEDED" or self.interruption.violations
                                  or self.interruption.lowest_in_service < self.interruption.desired):
            return False
        for g in self.groups:
            if g.lowest_in_service < g.desired or not g.max_size_restored or g.desired_after != g.desired:
                return False
            if g.lowest_healthy is not None and g.lowest_healthy < g.desired:
                return False
            if g.opted_in and (g.on_demand_after != 0 or g.failed):
                return False
            if not g.opted_in and (g.on_demand_after, g.spot_after) != (g.on_demand_before, g.spot_before):
                return False
        return True


def _market_counts(aws: EmbeddedAws, asg_name: str) -> tuple[int, int]:
    group = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])[
        "AutoScalingGroups"
    ][0]
    ids = [i["InstanceId"] for i in group["Instances"]]
    if not ids:
        return 0, 0
    reservations = aws.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    spot = sum(1 for r in reservations for i in r["Instances"] if i.get("InstanceLifecycle") == "spot")
    return len(ids) - spot, spot


def _progress_table(rows: dict[str, str]) -> Table:
    table = Table(title="Replacements in flight", expand=False)
    table.add_column("execution")
    table.add_column("state")
    for name, state in sorted(rows.items()):
        style = {"SUCCEEDED": "green", "FAILED": "red"}.get(state, "yellow")
        table.add_row(name, f"[{style}]{state}[/]")
    return table


def _follow(aws: EmbeddedAws, arns: list[str], console: Console, live: bool) -> dict[str, str]:
    sfn = aws.client("stepfunctions")
    names = {arn: arn.rsplit(":", 1)[-1] for arn in arns}
    states: dict[str, str] = {}
    quiet = Console(quiet=True)
    with Live(_progress_table(states), console=console if live else quiet, refresh_per_second=8) as view:
        while True:
            states = {names[arn]: current_state(sfn, arn) for arn in arns}
            view.update(_progress_table(states))
            if all(s in ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED") for s in states.values()):
                return states
            time.sleep(0.25)


def result_table(report: DemoReport) -> Table:
    table = Table(title=f"asg-optimizer demo ({report.seconds:.1f} s)")
    for column in ("ASG", "opted in", "on-demand", "spot", "swaps ok/failed", "lowest in-service",
                   "lowest healthy", "restored"):
        table.add_column(column, no_wrap=True)
    for g in report.groups:
        healthy = "-" if g.lowest_healthy is None else f"{g.lowest_healthy} of {g.desired}"
        table.add_row(
            g.asg_name, "yes" if g.opted_in else "no",
            f"{g.on_demand_before} → {g.on_demand_after}", f"{g.spot_before} → {g.spot_after}",
            f"{g.succeeded}/{g.failed}", f"{g.lowest_in_service} of {g.desired}", healthy,
            "yes" if g.max_size_restored and g.desired_after == g.desired else "NO",
        )
    return table


def run_demo(console: Console, *, as_json: bool = False) -> DemoReport:
    """Build the demo fleet; let the scanner swap every eligible on-demand instance; interrupt one spot; the
    commitments part; roll the workers to a new AMI; report."""
    started = time.monotonic()
    report = DemoReport()
    names = [spec.name for spec in DEMO_FLEET]
    with EmbeddedAws(boot_delay_seconds=2.0, clock=RealClock(DEMO_CLOCK_SCALE), wait_scale=DEMO_WAIT_SCALE) as aws:
        network = create_network()
        target_group = create_target_group(network, f"{WEB_GROUP}-tg", interval=5, healthy_threshold=2,
                                           deregistration_delay=30)
        for spec in DEMO_FLEET:
            create_group(network, replace(spec, target_group_arns=(target_group,)) if spec.name == WEB_GROUP else spec)
            on_demand, spot = _market_counts(aws, spec.name)
            report.groups.append(GroupReport(spec.name, spec.opted_in, spec.desired, on_demand, spot))
        _wait_healthy(aws, target_group, next(s.desired for s in DEMO_FLEET if s.name == WEB_GROUP))
        before = fleet_hourly_cost(names)
        report.hourly_cost_before = before.total
        scheduler = Scheduler(aws, inputs={"scan": {"timing": DEMO_TIMING}})
        with InvariantChecker(names) as watch:
            arns: list[str] = []
            for _ in range(MAX_SCANS):  # the scanner honours MaxParallel: scan again until nothing is left
                fresh = scheduler.scan()
                report.scans += 1
                if not fresh:
                    break
                arns += fresh
                states = _follow(aws, arns, console, live=not as_json)
            _wait_drained(aws, names)
            report.violations = watch.finish()
        report.executions = [{"name": name, "status": status} for name, status in sorted(states.items())]
        for g in report.groups:
            _fill_after(aws, g, states, watch)
        after = fleet_hourly_cost(names)
        report.hourly_cost_after = after.total
        report.saving_percent = after.saving_against(before)[1]
        report.interruption = run_interruption(aws, INTERRUPTED_GROUP)
        report.commitments = run_commitments(aws, network, DEMO_TIMING)
        report.rollout = run_rollout(aws, ROLLOUT_GROUP, DEMO_TIMING)
    report.seconds = time.monotonic() - started
    _print(console, report, as_json)
    return report


def _wait_healthy(aws: EmbeddedAws, target_group: str, count: int, timeout: float = 30.0) -> None:
    """The web group's instances pass their first health checks before anything is swapped."""
    elbv2, deadline = aws.client("elbv2"), time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = elbv2.describe_target_health(TargetGroupArn=target_group)["TargetHealthDescriptions"]
        if sum(1 for d in found if d["TargetHealth"]["State"] == "healthy") >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"the web group's targets were not healthy after {timeout} s")


def _wait_drained(aws: EmbeddedAws, names: list[str], timeout: float = 60.0) -> None:
    """Retired web members drain (Terminating for the deregistration delay) after their execution has ended; the
    fleet is counted and priced once they are gone, as an operator would see it a minute later."""
    autoscaling, deadline = aws.client("autoscaling"), time.monotonic() + timeout
    while time.monotonic() < deadline:
        groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"]
        if not any(i["LifecycleState"].startswith("Terminating") for g in groups for i in g["Instances"]):
            return
        time.sleep(0.2)
    raise TimeoutError(f"retired instances were still draining after {timeout} s")


def _fill_after(aws: EmbeddedAws, g: GroupReport, states: dict[str, str], watch: InvariantChecker) -> None:
    g.on_demand_after, g.spot_after = _market_counts(aws, g.asg_name)
    ours = [s for n, s in states.items() if n.startswith(f"{g.asg_name}-i-")]
    g.succeeded, g.failed = ours.count("SUCCEEDED"), len(ours) - ours.count("SUCCEEDED")
    g.lowest_in_service = watch.lowest_in_service(g.asg_name)
    g.lowest_healthy = watch.lowest_serving(g.asg_name)
    after = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[g.asg_name])[
        "AutoScalingGroups"
    ][0]
    spec = next(s for s in DEMO_FLEET if s.name == g.asg_name)
    g.desired_after = after["DesiredCapacity"]
    g.max_size_restored = after["MaxSize"] == spec.max_size and not after["SuspendedProcesses"]


def _print(console: Console, report: DemoReport, as_json: bool) -> None:
    run = report.interruption
    if as_json:
        console.print_json(json.dumps({
            "ok": report.ok, "seconds": round(report.seconds, 1), "scans": report.scans,
            "groups": [asdict(g) for g in report.groups], "violations": report.violations,
            "hourly_cost_before": report.hourly_cost_before, "hourly_cost_after": report.hourly_cost_after,
            "saving_percent": report.saving_percent, "executions": report.executions,
            "interruption": asdict(run) if run else None,
            "commitments": asdict(report.commitments) if report.commitments else None,
            "rollout": asdict(report.rollout) if report.rollout else None,
        }))
        return
    console.print()
    console.print(result_table(report))
    console.print(f"fleet cost: ${report.hourly_cost_before:.4f}/h on-demand → ${report.hourly_cost_after:.4f}/h "
                  f"after the swaps: [bold]{report.saving_percent:.1f} % saved[/]")
    if run:
        console.print(
            f"interruption: spot {run.spot_instance_id} in {INTERRUPTED_GROUP} got its warning; replacement "
            f"requested {run.requested_after_seconds:.2f} s later; lowest in-service {run.lowest_in_service} for "
            f"desired {run.desired}; fallback execution {run.status}"
        )
    for line in report.commitments.lines if report.commitments else []:
        console.print(f"commitments: {escape(line)}")
    if report.rollout:
        console.print(f"rollout: {escape(report.rollout.line)}")
    commitment_violations = report.commitments.violations if report.commitments else []
    rollout_violations = report.rollout.violations if report.rollout else []
    for violation in [*report.violations, *(run.violations if run else []), *commitment_violations,
                      *rollout_violations]:
        console.print(f"[red]violation:[/] {violation}")
    console.print("[green]all invariants held[/]" if report.ok else "[red]an invariant was broken[/]")
