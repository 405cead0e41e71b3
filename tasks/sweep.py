"""Sweep (scheduled): terminate spots we launched that no execution owns and no group serves with, give back what
crashed executions left holding on groups (from the coordination record), drop their instance claims, and drop
the rollout claim of a rollout that ended without its Release state (stopped, timed out, a failed Lambda).

Reads before it decides, in this order: our spots, their group membership, the coordination record, then the
RUNNING executions. Anything seen first whose execution is still running is therefore listed as running, so a
live swap is never undone. A group is repaired under its lease, and only holds seen in both reads are given back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tasks.aws.clients import client
from tasks.aws.coordination import GROUP, KEY, claims_in, group_items, release_claim, release_rollout
from tasks.aws.executions import (
    interruption_state_machine_arn,
    replace_state_machine_arn,
    rollout_state_machine_arn,
    running_swaps,
)
from tasks.aws.groups import describe_group, group_members
from tasks.aws.instances import LIVE_STATES, describe_instances
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.aws.rollout_records import running_rollouts
from tasks.core.coordination import record_from_item, rollout_claim_from
from tasks.core.errors import GroupNotFound
from tasks.core.requests import parse_sweep_request
from tasks.core.sweep import orphaned_spots, stale_claims, stale_holders, stale_rollout_claim, young_unowned_spots
from tasks.core.tags import REPLACES
from tasks.restore_group import give_back

SWEEP = "sweep"  # the sweep's name as a lease holder


@logged_metered_retryable
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_sweep_request(event or {})
    now = request.now or datetime.now(UTC)
    # Both workflows hold groups: a running interruption fallback's hold is as live as a running swap's.
    machines = (replace_state_machine_arn(), interruption_state_machine_arn())
    spots = describe_instances(filters=[{"Name": "tag-key", "Values": [REPLACES]},
                                        {"Name": "instance-state-name", "Values": LIVE_STATES}])
    members = group_members(s.instance_id for s in spots)
    items = group_items()
    records = [record_from_item(i[KEY][len(GROUP):], i) for i in items]
    claims = [(i[KEY][len(GROUP):], claimed) for i in items for claimed in claims_in(i)]
    running = {name for arn in machines for swaps in running_swaps(arn).values() for name, _ in swaps}
    rollouts = set(running_rollouts(rollout_state_machine_arn()))  # listed after the records were read
    actions: list[str] = []
    orphans = orphaned_spots(spots, members, running, now, request.orphan_after_seconds)
    for start in range(0, len(orphans), 1000):  # TerminateInstances takes up to 1,000 ids
        client("ec2").terminate_instances(InstanceIds=[instance_id for instance_id, _ in orphans[start:start + 1000]])
    actions += [f"terminated {instance_id}: {why}" for instance_id, why in orphans]
    left = young_unowned_spots(spots, members, running, now, request.orphan_after_seconds)
    repaired = []
    for record in records:
        stale = stale_holders(record, running)
        if not stale:
            continue
        try:
            group = describe_group(record.asg_name)
        except GroupNotFound:
            continue
        result = give_back(group, SWEEP, stale, steal_from=record.lease_owner if record.lease_owner in stale else None)
        repaired.append(group.name)
        actions.append(f"repaired {group.name}: gave back the holds of {', '.join(stale)}"
                       f"{'; MaxSize back to ' + str(result['max_size']) if result['max_size'] else ''}"
                       f"{'; resumed ' + result['resumed'] if result['resumed'] else ''}")
    for asg_name, claimed in claims:
        for instance_id, execution in stale_claims([claimed], running, now.timestamp(), request.orphan_after_seconds):
            if release_claim(asg_name, instance_id, execution):
                actions.append(f"released the claim of {execution} on {instance_id}: execution not running")
    for item in items:
        rollout = rollout_claim_from(item)
        asg_name = item[KEY][len(GROUP):]
        if rollout and stale_rollout_claim(rollout, rollouts, now.timestamp(), request.orphan_after_seconds) \
                and release_rollout(asg_name, rollout.execution):
            actions.append(f"released the rollout claim of {rollout.execution} on ASG {asg_name}: rollout not running")
    for line in actions:
        logger.warning(line)
    return {"terminated": [i for i, _ in orphans], "repaired": repaired, "actions": actions,
            "left": [f"left {instance_id}: {why}" for instance_id, why in left]}
