"""Rollouts: replace a group's instances that run an older launch template version or AMI, batch by batch,
through the replacement workflow (one child execution per instance), gated by a bake time and alarms.

Pure decisions only: the request, which instances still need replacing (skip matching), the batches, where the
checkpoints fall, and what the gate does after each batch. The state machine (statemachines/rollout.asl.json)
carries the state between its Lambdas (tasks/rollout_plan.py, tasks/rollout_gate.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.core.errors import InvalidInput
from tasks.core.model import Instance
from tasks.core.pause import ALARM, AlarmState, alarm_names
from tasks.core.steps import ChildStart, RolloutState

VERSION_TAG = "aws:ec2launchtemplate:version"  # EC2 tags an instance with the template version it launched from
_VERSION = re.compile(r"[1-9][0-9]*")
_IMAGE = re.compile(r"ami-[0-9a-f]{8,17}")
_BATCH = re.compile(r"(?P<n>[1-9][0-9]*)(?P<percent>%)?")
MAX_BAKE_SECONDS = 86_400  # a day: a Wait longer than that is a forgotten rollout, not a bake
TIMEOUT_SECONDS = 1_209_600  # the rollout state machine's TimeoutSeconds (14 days): what bounds its group claim
CONTINUE, CHECKPOINT, ROLLBACK, STOP, DONE = "continue", "checkpoint", "rollback", "stop", "done"
# A child's name is a swap's name (<asg>-<instance>-<second>): a swap of the same instance started in the same
# second already holds it, so the instance is in flight, not failed.
ALREADY_RUNNING = "StepFunctions.ExecutionAlreadyExistsException"


@dataclass(frozen=True)
class Target:
    """What the instances are rolled to: a launch template version of the group's template, or an AMI."""

    launch_template_version: str | None = None
    image_id: str | None = None

    def launch(self) -> dict[str, str]:
        """The replacement workflow's `launch` input."""
        if self.image_id:
            return {"image_id": self.image_id}
        return {"launch_template_version": str(self.launch_template_version)}

    def matches(self, instance: Instance) -> bool:
        if self.image_id:
            return instance.image_id == self.image_id
        return instance.tags.get(VERSION_TAG) == self.launch_template_version

    def __str__(self) -> str:
        return self.image_id or f"launch template version {self.launch_template_version}"


def parse_target(raw: object) -> Target:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise InvalidInput(f"to must be {{launch_template_version: N}} or {{image_id: ami-...}}, got {raw!r}")
    ((key, value),) = raw.items()
    if key == "launch_template_version" and _VERSION.fullmatch(str(value)):
        return Target(launch_template_version=str(value))
    if key == "image_id" and isinstance(value, str) and _IMAGE.fullmatch(value):
        return Target(image_id=value)
    raise InvalidInput(f"to must be {{launch_template_version: N}} (a version number) or {{image_id: ami-...}}, "
                       f"got {raw!r}")


@dataclass(frozen=True)
class RolloutRequest:
    asg_name: str
    to: Target
    batch: str = "1"
    checkpoints: tuple[int, ...] = ()
    bake_seconds: int = 0
    alarms: tuple[str, ...] = ()
    skip_matching: bool = True
    rollback_on_failure: bool = True
    failure_budget: int = 0  # failed child executions tolerated; one more stops the rollout


def parse_batch(raw: object) -> str:
    text = str(raw).strip()
    match = _BATCH.fullmatch(text)
    if isinstance(raw, bool) or not match or (match["percent"] and int(match["n"]) > 100):
        raise InvalidInput(f"batch must be a number of instances (1 or more) or a percentage such as '20%', "
                           f"got {raw!r}")
    return text


def parse_checkpoints(raw: object) -> tuple[int, ...]:
    values = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100 for v in values) or \
            values != sorted(set(values)):
        raise InvalidInput(f"checkpoints must be increasing percentages from 1 to 100, such as [25, 50], got {raw!r}")
    return tuple(values)


def _whole(data: Mapping[str, Any], key: str, default: int, high: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise InvalidInput(f"{key} must be a whole number from 0 to {high}, got {value!r}")
    return value


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, True)
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} must be true or false, got {value!r}")
    return value


def parse_rollout_request(data: Mapping[str, Any]) -> RolloutRequest:
    """The rollout's input; InvalidInput names the first bad field and value."""
    asg = data.get("asg_name")
    if not isinstance(asg, str) or not asg:
        raise InvalidInput(f"asg_name must be an Auto Scaling group name, got {asg!r}")
    raw_alarms = data.get("alarms", [])
    if not isinstance(raw_alarms, list) or not all(isinstance(a, str) for a in raw_alarms):
        raise InvalidInput(f"alarms must be a list of CloudWatch alarm names, got {raw_alarms!r}")
    return RolloutRequest(
        asg_name=asg, to=parse_target(data.get("to")), batch=parse_batch(data.get("batch", "1")),
        checkpoints=parse_checkpoints(data["checkpoints"]) if data.get("checkpoints") else (),
        bake_seconds=_whole(data, "bake_seconds", 0, MAX_BAKE_SECONDS),
        alarms=alarm_names(",".join(raw_alarms), "alarms") if raw_alarms else (),
        skip_matching=_flag(data, "skip_matching"), rollback_on_failure=_flag(data, "rollback_on_failure"),
        failure_budget=_whole(data, "failure_budget", 0, 1000),
    )


def batch_size(batch: str, total: int) -> int:
    """Instances per batch: a count, or a percentage of the instances to replace rounded up (at least 1)."""
    if batch.endswith("%"):
        return max(1, math.ceil(int(batch[:-1]) * total / 100))
    return int(batch)


def to_replace(target: Target, members: Sequence[str], instances: Mapping[str, Instance], *,
               skip_matching: bool) -> list[str]:
    """The members still to replace, oldest launch first (skip matching leaves those already on the target)."""
    live = [instances[i] for i in members if i in instances and instances[i].state == "running"]
    picked = [i for i in live if not (skip_matching and target.matches(i))]
    return [i.instance_id for i in sorted(picked, key=lambda i: (i.launch_time or "", i.instance_id))]


def batches(ids: Sequence[str], size: int) -> list[list[str]]:
    return [list(ids[start:start + size]) for start in range(0, len(ids), size)]


def checkpoint_after(batch_lengths: Sequence[int], checkpoints: Iterable[int]) -> list[int]:
    """Indexes of the batches after which the rollout pauses until resumed: the first batch at which the share of
    instances replaced reaches each checkpoint (never after the last batch: 100 % is the end)."""
    total, done, after, pending = sum(batch_lengths), 0, [], sorted(checkpoints)
    for index, length in enumerate(batch_lengths[:-1]):
        done += length
        reached = [p for p in pending if done * 100 >= p * total]
        if reached:
            after.append(index)
            pending = [p for p in pending if p not in reached]
    return after


@dataclass(frozen=True)
class Gate:
    action: str  # continue, checkpoint, rollback, stop, done
    why: str


def _problem(*, failed: int, budget: int, alarms: Mapping[str, AlarmState], named: Sequence[str]) -> str | None:
    """What stops the rollout: a named alarm in ALARM (or gone), or more failed children than the budget."""
    firing = [n for n in named if alarms.get(n) is None or alarms[n].state in (ALARM, None)]
    if firing:
        states = [f"{n} {'in ALARM' if alarms.get(n) and alarms[n].state else 'not found'}" for n in firing]
        return "alarm " + ", ".join(states)
    if failed > budget:
        return f"{failed} replacement(s) failed, more than the budget of {budget}"
    return None


def _stopped(problem: str | None, *, moved: int, rollback_on_failure: bool, cancelled: bool) -> Gate | None:
    """A problem rolls the moved instances back (or stops, without rollback or with nothing moved); a cancel stops."""
    if problem:
        if rollback_on_failure and moved:
            return Gate(ROLLBACK, f"{problem}: rolling back {moved} moved instance(s)")
        return Gate(STOP, problem)
    return Gate(STOP, "cancelled") if cancelled else None


def gate(*, failed: int, budget: int, alarms: Mapping[str, AlarmState], named: Sequence[str], moved: int,
         rollback_on_failure: bool, batch_index: int, batch_count: int, checkpoints: Sequence[int],
         cancelled: bool, paused: str | None) -> Gate:
    """What the rollout does after a batch has baked. Stop conditions first (an alarm, a missing alarm, more
    failed children than the budget), then a cancel, then the end, then a checkpoint or a pause (hold until
    resumed), else the next batch."""
    stopped = _stopped(_problem(failed=failed, budget=budget, alarms=alarms, named=named), moved=moved,
                       rollback_on_failure=rollback_on_failure, cancelled=cancelled)
    if stopped:
        return stopped
    if batch_index + 1 >= batch_count:
        return Gate(DONE, f"all {batch_count} batch(es) done")
    if paused:
        return Gate(CHECKPOINT, f"holding before batch {batch_index + 2}: {paused}")
    if batch_index in checkpoints:
        return Gate(CHECKPOINT, f"checkpoint after batch {batch_index + 1} of {batch_count}")
    return Gate(CONTINUE, f"batch {batch_index + 2} of {batch_count}")


def child(asg_name: str, instance_id: str, launch: Mapping[str, str], stamp: Any, timing: Mapping[str, int],
          rollout: str, market: str = "spot") -> ChildStart:
    """One child execution of the replacement workflow: named as every swap is (so the scanner, the sweep and
    the per-instance claim see it), with the rollout's start time, so its children share the rollout's stamp."""
    from tasks.core.naming import execution_name

    return {"name": execution_name(asg_name, instance_id, stamp),
            "input": {"asg_name": asg_name, "instance_id": instance_id, "reason": "rollout", "launch": dict(launch),
                      "market": market, "timing": dict(timing), "rollout": rollout}}


def markets(ids: Sequence[str], instances: Mapping[str, Instance], *, on_demand_now: int, floor: int,
            covered: Collection[str] = ()) -> dict[str, str]:
    """The market of each replacement: a spot stays spot; an on-demand that a Reserved Instance or Savings Plan
    covers (`covered`) is replaced by an on-demand (the new one, same type and zone, takes the coverage over, as
    the scanner keeps it on-demand); of the other on-demand instances (oldest first) as many become spot as the
    on-demand floor leaves room for, the rest are replaced by on-demand instances."""
    room = max(0, on_demand_now - floor)
    chosen: dict[str, str] = {}
    for instance_id in ids:
        if not instances[instance_id].on_demand:
            chosen[instance_id] = "spot"
        elif instance_id not in covered and room > 0:
            chosen[instance_id], room = "spot", room - 1
        else:
            chosen[instance_id] = "on-demand"
    return chosen


def previous_launch(target: Target, instance: Instance, group_version: str) -> dict[str, str]:
    """What an instance ran before the rollout, as the replacement workflow's `launch` input (for rollback)."""
    if target.image_id:
        return {"image_id": instance.image_id}
    version = instance.tags.get(VERSION_TAG) or group_version
    return {"launch_template_version": version}


def settle(results: Sequence[Mapping[str, Any]], previous: Mapping[str, Mapping[str, str]]
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(moved, kept, failed) from one batch's child results: a child that swapped moved its instance (old -> new,
    with what the old one ran); one that succeeded with another outcome (refused: the floor keeps it on-demand,
    no-capacity) kept it; one that failed, timed out or was stopped failed."""
    moved, kept, failed = [], [], []
    for result in results:
        source = result.get("input") or {}
        old = source.get("instance_id", "")
        found = result.get("output")
        output: dict[str, Any] = found if isinstance(found, dict) else {}
        if result.get("error") == ALREADY_RUNNING:  # a swap of this instance, started in the same second
            kept.append({"instance_id": old, "outcome": "in-flight", "why": f"{result.get('name')} already exists"})
        elif result.get("status") != "SUCCEEDED":
            failed.append({"instance_id": old, "name": result.get("name"), "error": result.get("error")})
        elif output.get("outcome") in (None, "launched") and (output.get("spot") or {}).get("spot_instance_id"):
            moved.append({"instance_id": old, "new_instance_id": output["spot"]["spot_instance_id"],
                          "market": output["spot"].get("market", "spot"), "previous": dict(previous.get(old, {}))})
        else:
            kept.append({"instance_id": old, "outcome": output.get("outcome"), "why": output.get("why")})
    return moved, kept, failed


ROLLOUT_MARK = "-rollout-"


def rollout_name(asg_name: str, stamp: str) -> str:
    """`<asg>-rollout-<UTC yyyymmddThhmmss>` (its children carry the same stamp)."""
    from tasks.core.naming import MAX_NAME, group_prefix

    tail = f"{ROLLOUT_MARK}{stamp}"
    return group_prefix(asg_name)[: MAX_NAME - len(tail)].rstrip("-") + tail


def refusal(request: RolloutRequest, refresh: str | None, paused: str | None,
            alarms: Mapping[str, AlarmState]) -> str | None:
    """Why the rollout must not start, or None (another rollout of the group is the claim's to refuse, last)."""
    if refresh:
        return f"ASG {request.asg_name} has an {refresh}: Auto Scaling is replacing its instances itself"
    if paused:
        return paused
    missing = [n for n in request.alarms if alarms.get(n) is None or alarms[n].state is None]
    if missing:
        return f"alarm {missing[0]} not found (a metric alarm of that name in this region)"
    return None


def claimed_by(asg_name: str, holder: str) -> str:
    """The refusal when the group's rollout claim is another rollout's."""
    return f"ASG {asg_name} already has a rollout running: {holder}"


def plan(request: RolloutRequest, *, name: str, stamp: Any, group_version: str, members: Sequence[str],
         instances: Mapping[str, Instance], timing: Mapping[str, int], floor: int,
         covered: Mapping[str, str] | None = None) -> RolloutState:
    """The rollout's state as the state machine carries it: batches of instances to replace, the first batch's
    child executions, what each instance ran (for rollback), and the gate's settings. `covered`: on-demand
    instances a commitment covers (id -> why), kept on-demand."""
    ids = to_replace(request.to, members, instances, skip_matching=request.skip_matching)
    size = batch_size(request.batch, len(ids))
    planned = batches(ids, size)
    launch = request.to.launch()
    on_demand_now = sum(1 for i in members if i in instances and instances[i].on_demand)
    kept_covered = {i: why for i, why in (covered or {}).items() if i in ids and instances[i].on_demand}
    chosen = markets(ids, instances, on_demand_now=on_demand_now, floor=floor, covered=kept_covered)
    state: RolloutState = {
        "markets": chosen, "covered": kept_covered,
        "asg_name": request.asg_name, "execution_name": name, "target": launch, "timing": dict(timing),
        "previous": {i: previous_launch(request.to, instances[i], group_version) for i in ids},
        "batches": planned, "checkpoint_after": checkpoint_after([len(b) for b in planned], request.checkpoints),
        "batch_index": 0, "bake_seconds": request.bake_seconds, "alarms": list(request.alarms),
        "failure_budget": request.failure_budget, "rollback_on_failure": request.rollback_on_failure,
        "stamp": str(stamp), "moved": [], "kept": [], "failed": [], "phase": "rollout",
        "skipped": len(members) - len(ids),
        "outcome": "nothing", "why": f"every instance already runs {request.to}", "current": [],
    }
    if not ids:
        return state
    state["current"] = [child(request.asg_name, i, launch, stamp, timing, name, chosen[i]) for i in planned[0]]
    state["outcome"] = "rolling"
    state["why"] = f"batch 1 of {len(planned)}: {len(planned[0])} of {len(ids)} instance(s)"
    return state


def after_batch(state: RolloutState, results: Sequence[Mapping[str, Any]], *,
                alarms: Mapping[str, AlarmState], cancelled: bool, paused: str | None) -> RolloutState:
    """The state after a batch has run and baked: its instances settled, the gate's decision (`action`, `why`),
    and the next child executions (`current`): the next batch's, or the moved instances' way back."""
    from datetime import datetime

    moved_now, kept_now, failed_now = settle(results, state["previous"])
    moved = [*state["moved"], *moved_now]
    kept = [*state["kept"], *kept_now]
    failed = [*state["failed"], *failed_now]
    index, count = int(state["batch_index"]), len(state["batches"])
    decision = gate(failed=len(failed), budget=int(state["failure_budget"]), alarms=alarms, named=state["alarms"],
                    moved=len(moved), rollback_on_failure=bool(state["rollback_on_failure"]), batch_index=index,
                    batch_count=count, checkpoints=state["checkpoint_after"], cancelled=cancelled, paused=paused)
    stamp, asg, name = datetime.fromisoformat(state["stamp"]), state["asg_name"], state["execution_name"]
    current: list[ChildStart] = []
    if decision.action in (CONTINUE, CHECKPOINT):
        index += 1
        current = [child(asg, i, state["target"], stamp, state["timing"], name, state["markets"][i])
                   for i in state["batches"][index]]
    elif decision.action == ROLLBACK:
        current = [child(asg, m["new_instance_id"], m["previous"], stamp, state["timing"], name, m["market"])
                   for m in moved]
    out = state.copy()
    out.pop("results", None)
    return {**out, "moved": moved, "kept": kept, "failed": failed, "batch_index": index, "current": current,
            "action": decision.action, "why": decision.why,
            "phase": "rollback" if decision.action == ROLLBACK else state["phase"]}


def resume_gate(*, failed: int, budget: int, alarms: Mapping[str, AlarmState], named: Sequence[str], moved: int,
                rollback_on_failure: bool, next_index: int, batch_count: int, cancelled: bool,
                paused: str | None) -> Gate:
    """Before the batch at `next_index` starts after a checkpoint or a pause was resumed: whatever stops a rollout
    after a batch stops it now too (an alarm, failures beyond the budget, a cancel), and a pause still on holds it
    again, so `rollout resume` cannot start a batch while the fleet or the group is paused."""
    stopped = _stopped(_problem(failed=failed, budget=budget, alarms=alarms, named=named), moved=moved,
                       rollback_on_failure=rollback_on_failure, cancelled=cancelled)
    if stopped:
        return stopped
    if paused:
        return Gate(CHECKPOINT, f"holding before batch {next_index + 1}: {paused}")
    return Gate(CONTINUE, f"batch {next_index + 1} of {batch_count}")


def after_hold(state: RolloutState, *, alarms: Mapping[str, AlarmState], cancelled: bool,
               paused: str | None) -> RolloutState:
    """The state after a checkpoint (or a pause) was resumed: its next batch (already in `current`) starts, holds
    again, or the rollout stops or rolls back (`current`: the moved instances' way back)."""
    from datetime import datetime

    moved, index = state["moved"], int(state["batch_index"])
    decision = resume_gate(failed=len(state["failed"]), budget=int(state["failure_budget"]), alarms=alarms,
                           named=state["alarms"], moved=len(moved),
                           rollback_on_failure=bool(state["rollback_on_failure"]), next_index=index,
                           batch_count=len(state["batches"]), cancelled=cancelled, paused=paused)
    current: list[ChildStart] = list(state["current"]) if decision.action in (CONTINUE, CHECKPOINT) else []
    if decision.action == ROLLBACK:
        stamp, asg, name = datetime.fromisoformat(state["stamp"]), state["asg_name"], state["execution_name"]
        current = [child(asg, m["new_instance_id"], m["previous"], stamp, state["timing"], name, m["market"])
                   for m in moved]
    out = state.copy()
    out.pop("results", None)
    out.pop("resumed", None)
    return {**out, "current": current, "action": decision.action, "why": decision.why,
            "phase": "rollback" if decision.action == ROLLBACK else state["phase"]}


def behind(instances: Iterable[Instance], version: str, image_id: str | None) -> list[str]:
    """The instances on another launch template version (or AMI) than the one their group launches now: what a
    rollout would replace (`status` shows how many)."""
    return sorted(i.instance_id for i in instances
                  if i.tags.get(VERSION_TAG) != version or (image_id is not None and i.image_id != image_id))
