"""Sweep (scheduled): terminate spots we launched that no execution owns and no group serves with, and repair
groups left held by a crashed execution (settings put back from the tags AttachSpot recorded).

Reads before it decides, in this order: our spots, their group membership, the held groups, then the RUNNING
executions. A spot or hold seen first whose execution is still running is therefore listed as running, so a
live swap is never undone. A group about to be repaired is read once more, and only holds seen in both reads are
released (one extra call per repaired group: crashes are rare).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from tasks.aws.clients import aws_handler, client
from tasks.aws.executions import interruption_state_machine_arn, replace_state_machine_arn, running_swaps
from tasks.aws.groups import describe_group, group_from_response, group_members, groups_with_tag_keys
from tasks.aws.instances import LIVE_STATES, describe_instances
from tasks.core.errors import GroupNotFound
from tasks.core.holds import plan_restore
from tasks.core.requests import parse_sweep_request
from tasks.core.sweep import orphaned_spots, stale_holds, still_stale, young_unowned_spots
from tasks.core.tags import ORIGINAL_MAX_SIZE, ORIGINAL_SUSPENDED, REPLACES
from tasks.restore_group import restore

logger = Logger()


@aws_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = parse_sweep_request(event or {})
    now = request.now or datetime.now(UTC)
    # Both workflows hold groups: a running interruption fallback's hold is as live as a running swap's.
    machines = (replace_state_machine_arn(), interruption_state_machine_arn())
    spots = describe_instances(filters=[{"Name": "tag-key", "Values": [REPLACES]},
                                        {"Name": "instance-state-name", "Values": LIVE_STATES}])
    members = group_members(s.instance_id for s in spots)
    held = [group_from_response(g) for g in groups_with_tag_keys([ORIGINAL_MAX_SIZE, ORIGINAL_SUSPENDED])]
    running = {name for arn in machines for swaps in running_swaps(arn).values() for name, _ in swaps}
    actions: list[str] = []
    orphans = orphaned_spots(spots, members, running, now, request.orphan_after_seconds)
    for start in range(0, len(orphans), 1000):  # TerminateInstances takes up to 1,000 ids
        client("ec2").terminate_instances(InstanceIds=[instance_id for instance_id, _ in orphans[start:start + 1000]])
    for instance_id, why in orphans:
        actions.append(f"terminated {instance_id}: {why}")
    left = young_unowned_spots(spots, members, running, now, request.orphan_after_seconds)
    repaired = []
    for listed in held:
        stale = stale_holds(listed, running)
        if stale is None:
            continue
        try:  # re-read: the workflow may have restored (or another swap held) the group since the listing
            group = describe_group(listed.name)
        except GroupNotFound:
            continue
        stale = still_stale(group, stale)
        if stale is None:
            continue
        plan = plan_restore(group, stale)
        restore(group, stale)
        repaired.append(group.name)
        actions.append(
            f"repaired {group.name}: released holds of {', '.join(stale) or 'no execution'}"
            f"{'; MaxSize back to ' + str(plan.max_size) if plan.max_size is not None else ''}"
            f"{'; desired back to ' + str(plan.desired) if plan.desired is not None else ''}"
            f"{'; resumed ' + ', '.join(plan.resume) if plan.resume else ''}"
        )
    for line in actions:
        logger.warning(line)
    return {"terminated": [i for i, _ in orphans], "repaired": repaired, "actions": actions,
            "left": [f"left {instance_id}: {why}" for instance_id, why in left]}
