"""RestoreGroup: give back what this execution took from its group, if a section has not already (success and
failure paths of both workflows), and release its instance claim. One section under the group's lease
(tasks.core.coordination): MaxSize only by our own slots and only if nobody changed it; desired never lowered;
processes resumed only if we suspended them and no other hold remains."""

from __future__ import annotations

from typing import Any

from tasks.aws.coordination import begin_section, release_claim
from tasks.aws.group_writes import apply_give_back
from tasks.aws.groups import describe_group
from tasks.aws.invocation import logged_metered_retryable, logger
from tasks.core.coordination import plan_give_back
from tasks.core.errors import GroupNotFound
from tasks.core.model import Group
from tasks.core.steps import RestoreGroupInput, RestoreResult

NOTHING: RestoreResult = {"restored": False, "max_size": 0, "resumed": ""}


def give_back(group: Group, execution: str, leaving: list[str], claim_of: str | None = None,
              steal_from: str | None = None) -> RestoreResult:
    """Give back the holds of `leaving` (those the lease's read still finds) under the lease; shared with the
    sweep's repair, which may take the lease from a crashed holder (`steal_from`)."""
    section = begin_section(group.name, execution, group, steal_from=steal_from)
    leaving = [e for e in leaving if e in section.found.holds]
    give = plan_give_back(section.group, section.found, leaving)
    apply_give_back(group.name, give, logger)
    section.release(give.record, dropped=leaving, claim_of=claim_of)
    logger.info("group restored", extra={"asg": group.name, "max_size": give.max_size, "resumed": give.resume})
    return {"restored": True, "max_size": give.max_size or 0, "resumed": ",".join(give.resume)}


@logged_metered_retryable
def handler(event: RestoreGroupInput, context: Any) -> RestoreResult:
    execution, claimed = event["execution_name"], event.get("instance_id")
    retire, release, attach = event.get("retire"), event.get("release"), event.get("attach")
    if (retire and retire.get("restored")) or (release and release.get("restored")) or (
            attach and attach.get("retired")):
        return NOTHING  # the section that retired or released gave the group back (and the claim)
    try:
        group = describe_group(event["asg_name"])
    except GroupNotFound:
        if claimed:
            release_claim(event["asg_name"], claimed, execution)
        return NOTHING
    return give_back(group, execution, [execution], claim_of=claimed)
