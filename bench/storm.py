"""Interruption warnings for every spot of one group at once: how long until the last replacement is requested,
and whether the group stays exact (desired back, in-service never below it), on the embedded AWS with handlers
running concurrently (no forced interleaving: the natural one).

    python bench/storm.py [SIZE ...]      (default: 1 20)

Target: a single warning -> replacement requested <= 2 s. A storm's time to its last request is reported.
"""

from __future__ import annotations

import json
import sys

from asg_optimizer.local.embedded import EmbeddedAws
from asg_optimizer.local.events import emit, reclaim_at_notice_end, warning_event
from asg_optimizer.local.group_builder import GroupSpec, create_group, create_network
from asg_optimizer.local.invariants import InvariantChecker
from stack.description import INTERRUPTION

NOTICE = 120


def storm(size: int) -> dict[str, float]:
    with EmbeddedAws(boot_delay_seconds=0.5, environment={"SPOT_NOTICE_SECONDS": str(NOTICE)}) as aws:
        network = create_network()
        raw = create_group(network, GroupSpec("web", desired=0, max_size=size, zones=("a",)))
        fleet = aws.client("ec2").create_fleet(
            Type="instant", SpotOptions={"AllocationStrategy": "price-capacity-optimized"},
            TargetCapacitySpecification={"TotalTargetCapacity": size, "DefaultTargetCapacityType": "spot"},
            LaunchTemplateConfigs=[{"LaunchTemplateSpecification": {
                "LaunchTemplateId": raw["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
                "Overrides": [{"InstanceType": "m5.large", "SubnetId": network.subnets["a"]}]}])
        spots = [i for entry in fleet["Instances"] for i in entry["InstanceIds"]]
        autoscaling = aws.client("autoscaling")
        autoscaling.attach_instances(AutoScalingGroupName="web", InstanceIds=spots)
        machine = aws.deployment.state_machine_arns[INTERRUPTION].replace(":stateMachine:", ":execution:")
        with InvariantChecker(["web"]) as check:
            deliveries = []
            for spot in spots:
                delivery = emit(aws, warning_event(aws, spot, "us-east-1a"))
                reclaim_at_notice_end(aws, spot, delivery)
                deliveries.append(delivery)
            described = [aws.wait(f"{machine}:{d.results['spot-interruption']['execution_name']}", timeout=300)
                         for d in deliveries]
        violations = check.finish()
        requested = [json.loads(d.get("output") or "{}").get("requested_at", 0.0) for d in described]
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
        return {
            "warnings": size, "succeeded": sum(d["status"] == "SUCCEEDED" for d in described),
            "desired_before": size, "desired_after": group["DesiredCapacity"], "max_after": group["MaxSize"],
            "lowest_in_service": check.lowest_in_service("web"), "violations": len(violations),
            "first_request_s": min(requested) - deliveries[0].emitted_epoch,
            "last_request_s": max(requested) - deliveries[0].emitted_epoch,
        }


def main(sizes: list[int]) -> int:
    print(f"{'warnings':>9}{'ok':>5}{'desired':>12}{'MaxSize':>9}{'lowest in svc':>15}{'violations':>12}"
          f"{'1st request s':>15}{'last request s':>16}")
    within = True
    for size in sizes:
        r = storm(size)
        print(f"{r['warnings']:>9}{r['succeeded']:>5}{r['desired_before']:>6} -> {r['desired_after']:<3}"
              f"{r['max_after']:>9}{r['lowest_in_service']:>15}{r['violations']:>12}{r['first_request_s']:>15.2f}"
              f"{r['last_request_s']:>16.2f}")
        within &= r["desired_after"] == size and r["violations"] == 0 and (size > 1 or r["last_request_s"] <= 2)
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main([int(a) for a in sys.argv[1:]] or [1, 20]))
