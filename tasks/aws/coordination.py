"""The cooldown store: a DynamoDB table (name in COOLDOWN_TABLE) with TTL on `expires_at`.

DynamoDB over alternatives: it survives across invocations and executions (an ASG tag would not cover pools
shared by groups; SSM parameters throttle at tens of writes per second), a conditional put makes "churn an
instance at most once per cooldown" atomic, and TTL removes old entries without a sweeper. TTL deletes late,
so readers compare `expires_at` with the clock themselves.

LaunchSpot reads exactly the keys it needs (its candidate pools and the region's spot quota: BatchGetItem), not the
table, and a warm container keeps what it read or wrote for COOLDOWN_READ_SECONDS: its own writes count at once, a
cooldown another container wrote counts within that bound (a pool that just had no capacity is tried at most once
more by each warm container; CreateFleet then finds it empty and cools it again).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from tasks.aws.clients import batches, client, error_code
from tasks.aws.groups import describe_group
from tasks.aws.settings import CoordinationTable
from tasks.core.cooldowns import (
    COOLDOWN_SECONDS,
    ON_DEMAND,
    SPOT,
    cooling_pools,
    expiry,
    hook_group_of,
    hook_key,
    instance_key,
    pool_key,
    quota_key,
    quota_region_of,
)
from tasks.core.coordination import (
    HOLD_ATTRIBUTE,
    LEASE_SECONDS,
    ROLLOUT_CLAIM,
    GroupRecord,
    Hold,
    RolloutClaim,
    Take,
    confirmed,
    hold_fields,
    item_fields,
    planned_from,
    read_is_current,
    record_from_item,
    retry_take,
    rollout_claim_from,
    unconfirmed,
)
from tasks.core.errors import AwsThrottled
from tasks.core.model import Group
from tasks.core.prices import Pool

KEY, EXPIRES_AT = "cooldown_key", "expires_at"
_BATCH = 25  # BatchWriteItem's limit
_GET_BATCH = 100  # BatchGetItem's limit of keys a request
_GET_ATTEMPTS = 5  # BatchGetItem answers part of a request under load: the rest is asked again, backing off
COOLDOWN_READ_SECONDS = 30  # how long a warm container trusts what it read (or wrote) of a cooldown key


def table_name() -> str:
    return CoordinationTable.from_env().name


def _item(key: str, expires_at: int, reason: str, source: str) -> dict[str, dict[str, str]]:
    return {KEY: {"S": key}, EXPIRES_AT: {"N": str(expires_at)}, "reason": {"S": reason}, "source": {"S": source}}


def cool_pools(pools: Iterable[Pool], *, reason: str, source: str, now: float | None = None,
               seconds: int = COOLDOWN_SECONDS, market: str = SPOT) -> list[str]:
    """Put pools of `market` on cooldown (a later cooldown replaces an earlier one); returns the keys written."""
    until = expiry(time.time() if now is None else now, seconds)
    keys = sorted({pool_key(p, market) for p in pools})
    dynamodb = client("dynamodb")
    for start in range(0, len(keys), _BATCH):
        requests = [{"PutRequest": {"Item": _item(k, until, reason, source)}} for k in keys[start:start + _BATCH]]
        pending = {table_name(): requests}
        for _ in range(5):  # unprocessed items come back under load; a few retries, then give up loudly
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(0.2)
        if pending:
            raise RuntimeError(f"cooldown table kept {len(pending[table_name()])} writes unprocessed")
    _remember({k: _item(k, until, reason, source) for k in keys}, time.time() if now is None else now)
    return keys


def claim_instance(instance_id: str, *, reason: str, now: float | None = None,
                   seconds: int = COOLDOWN_SECONDS) -> bool:
    """Mark an instance as churned; False when it already was within the cooldown (nothing written). Atomic, so
    two recommendations delivered together claim it once."""
    at = time.time() if now is None else now
    try:
        client("dynamodb").put_item(
            TableName=table_name(), Item=_item(instance_key(instance_id), expiry(at, seconds), reason, instance_id),
            ConditionExpression="attribute_not_exists(#k) OR #e <= :now",
            ExpressionAttributeNames={"#k": KEY, "#e": EXPIRES_AT},
            ExpressionAttributeValues={":now": {"N": str(int(at))}},
        )
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


IDLE_PREFIX, IDLE_RECORD_SECONDS = "idle#", 24 * 3600


def idle_records() -> dict[str, float]:
    """commitment id -> when a scan first saw it idle (tasks.core.commitment_swaps hysteresis)."""
    pages = client("dynamodb").get_paginator("scan").paginate(
        TableName=table_name(), FilterExpression="begins_with(#k, :idle)", ExpressionAttributeNames={"#k": KEY},
        ExpressionAttributeValues={":idle": {"S": IDLE_PREFIX}},
    )
    return {item[KEY]["S"].removeprefix(IDLE_PREFIX): float(item["since"]["N"])
            for page in pages for item in page["Items"]}


def save_idle_records(records: dict[str, float], previous: dict[str, float], now: float) -> None:
    """Write what is newly idle, forget what is used again (TTL drops a record no scan refreshed in a day)."""
    dynamodb = client("dynamodb")
    for commitment_id, since in records.items():
        if previous.get(commitment_id) != since:
            dynamodb.put_item(TableName=table_name(), Item={
                KEY: {"S": IDLE_PREFIX + commitment_id}, EXPIRES_AT: {"N": str(expiry(now, IDLE_RECORD_SECONDS))},
                "since": {"N": str(int(since))}, "reason": {"S": "idle commitment"}, "source": {"S": "scanner"}})
    for commitment_id in set(previous) - set(records):
        dynamodb.delete_item(TableName=table_name(), Key={KEY: {"S": IDLE_PREFIX + commitment_id}})


def cool_quota(region: str, *, code: str, source: str, now: float | None = None,
               seconds: int = COOLDOWN_SECONDS) -> str:
    """Back off every spot launch in the region (the spot quota is the account's, per region); returns the key."""
    key = quota_key(region)
    at = time.time() if now is None else now
    item = {**_item(key, expiry(at, seconds), "quota-exceeded", source), "code": {"S": code}}
    client("dynamodb").put_item(TableName=table_name(), Item=item)
    _remember({key: item}, at)
    return key


def cool_hooked_group(asg_name: str, refusal: str, *, source: str, now: float | None = None,
                      seconds: int = COOLDOWN_SECONDS) -> str:
    """Validate refused a swap for the group's launch hook: the scanner skips the group (saying why) until this
    expires, then one swap asks again. Returns the key."""
    key = hook_key(asg_name)
    item = _item(key, expiry(time.time() if now is None else now, seconds), refusal, source)
    client("dynamodb").put_item(TableName=table_name(), Item=item)
    return key


PAUSE_KEY = "pause#fleet"  # the item `asg-optimizer pause` writes; no expires_at, so TTL never removes it


@dataclass(frozen=True)
class Cooldowns:
    pools: frozenset[Pool]  # spot pools
    quotas: dict[str, str]  # region -> the quota error code that put it on cooldown
    on_demand_pools: frozenset[Pool] = frozenset()  # a swap back found no on-demand capacity there lately
    hooked: dict[str, tuple[str, float]] = field(default_factory=dict)  # group -> (Validate's refusal, until)
    pause_item: dict[str, Any] | None = None  # the pause by hand (PAUSE_KEY), None when not paused by hand


def active_cooldowns(now: float | None = None) -> Cooldowns:
    """Every pool (spot and on-demand), every region's spot quota and every group refused for its launch hook,
    cooling now, and the pause set by hand: one paginated Scan (the table holds only the entries of the last half
    hour), read consistently so that a `pause` or `resume` a moment ago counts, as a consistent GetItem of the
    pause record would (the scanner makes no GetItem of its own for it)."""
    at = time.time() if now is None else now
    pages = client("dynamodb").get_paginator("scan").paginate(
        TableName=table_name(), ConsistentRead=True,
        FilterExpression="((begins_with(#k, :pool) OR begins_with(#k, :quota) OR begins_with(#k, :hook)) "
                         "AND #e > :now) OR #k = :pause",
        ExpressionAttributeNames={"#k": KEY, "#e": EXPIRES_AT},
        ExpressionAttributeValues={":pool": {"S": "pool#"}, ":quota": {"S": "quota#"}, ":hook": {"S": hook_key("")},
                                   ":now": {"N": str(int(at))}, ":pause": {"S": PAUSE_KEY}},
    )
    items = [item for page in pages for item in page["Items"]]
    paused = next((item for item in items if item[KEY]["S"] == PAUSE_KEY), None)
    items = [item for item in items if item[KEY]["S"] != PAUSE_KEY]
    entries = [(item[KEY]["S"], float(item[EXPIRES_AT]["N"])) for item in items]
    quotas = {region: item.get("code", {}).get("S", "quota")
              for item in items if (region := quota_region_of(item[KEY]["S"])) and float(item[EXPIRES_AT]["N"]) > at}
    hooked = {group: (item.get("reason", {}).get("S", "launch lifecycle hook"), float(item[EXPIRES_AT]["N"]))
              for item in items if (group := hook_group_of(item[KEY]["S"])) and float(item[EXPIRES_AT]["N"]) > at}
    return Cooldowns(cooling_pools(entries, at), quotas, cooling_pools(entries, at, ON_DEMAND), hooked, paused)


# What this container read or wrote of cooldown keys: key -> (when, epoch seconds; the item, None: no cooldown),
# for the table and client it was read through (a new client, as between embedded AWS accounts, reads again).
_seen: dict[str, tuple[float, dict[str, Any] | None]] = {}
_seen_through: list[Any] = [None, ""]
_seen_lock = threading.Lock()


def _seen_now(dynamodb: Any, table: str) -> dict[str, tuple[float, dict[str, Any] | None]]:
    """The remembered keys for this client and table (the caller holds _seen_lock)."""
    if _seen_through[0] is not dynamodb or _seen_through[1] != table:
        _seen.clear()
        _seen_through[:] = [dynamodb, table]
    return _seen


def _remember(items: dict[str, dict[str, Any] | None], at: float) -> None:
    dynamodb = client("dynamodb")
    with _seen_lock:
        _seen_now(dynamodb, table_name()).update({k: (at, item) for k, item in items.items()})


def forget_cooldown_reads() -> None:
    """Drop what the container remembers of the cooldown table (tests that write it behind the functions' back)."""
    with _seen_lock:
        _seen.clear()


def read_cooldown_keys(keys: Iterable[str], at: float) -> dict[str, dict[str, Any] | None]:
    """key -> its item (None: absent) for exactly these keys: remembered ones younger than COOLDOWN_READ_SECONDS,
    the others by BatchGetItem, 100 keys a request, the UnprocessedKeys of a partial answer asked again (boto3 has
    no paginator for it); still unprocessed after _GET_ATTEMPTS, the read is retryable (AwsThrottled)."""
    dynamodb = client("dynamodb")
    table = table_name()
    wanted = sorted(set(keys))
    with _seen_lock:
        seen = _seen_now(dynamodb, table)
        for key in [k for k, (when, _) in seen.items() if not 0 <= at - when < COOLDOWN_READ_SECONDS]:
            del seen[key]
        found = {k: seen[k][1] for k in wanted if k in seen}
    missing = [k for k in wanted if k not in found]
    read: dict[str, dict[str, Any] | None] = dict.fromkeys(missing)
    for batch in batches(missing, _GET_BATCH):
        pending: dict[str, Any] = {table: {"Keys": [{KEY: {"S": k}} for k in batch]}}
        for attempt in range(_GET_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, 0.05 * 2 ** attempt))
            response = dynamodb.batch_get_item(RequestItems=pending)
            for item in response.get("Responses", {}).get(table, []):
                read[item[KEY]["S"]] = item
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
        if pending:
            raise AwsThrottled(f"BatchGetItem: the cooldown table left {len(pending[table]['Keys'])} keys "
                               f"unprocessed {_GET_ATTEMPTS} times")
    with _seen_lock:
        _seen_now(dynamodb, table).update({k: (at, item) for k, item in read.items()})
    return found | read


def launch_cooldowns(pools: Iterable[Pool], region: str, now: float | None = None) -> Cooldowns:
    """The spot cooldowns of exactly these pools, and the region's spot quota (LaunchSpot's read; see the module
    docstring for how long a warm container keeps it)."""
    at = time.time() if now is None else now
    quota = quota_key(region)
    items = read_cooldown_keys([*(pool_key(p) for p in pools), quota], at)
    live = {k: item for k, item in items.items() if item is not None and float(item[EXPIRES_AT]["N"]) > at}
    quotas = {region: live[quota].get("code", {}).get("S", "quota")} if quota in live else {}
    return Cooldowns(cooling_pools([(k, float(i[EXPIRES_AT]["N"])) for k, i in live.items()], at), quotas)


def release_instance(instance_id: str) -> None:
    """Undo claim_instance when what the claim guarded did not happen (the swap did not start)."""
    client("dynamodb").delete_item(TableName=table_name(), Key={KEY: {"S": instance_key(instance_id)}})


def active_pools(now: float | None = None) -> frozenset[Pool]:
    """Every spot pool cooling now."""
    return active_cooldowns(now).pools


# --- Group records (tasks.core.coordination) share the table: one item per group (`group#<asg>`) holding its
# lease, one `hold#<execution>` attribute per holding execution and one `claim#<instance-id>` per claimed instance.

_serializer, _deserializer = TypeSerializer(), TypeDeserializer()
GROUP, CLAIM = "group#", "claim#"  # item key prefix; claim attribute prefix
CLAIM_SECONDS = 7200 + 600  # the replacement state machine's TimeoutSeconds, plus the sweep's period
_BUSY_WAIT = (0.05, 0.25)  # seconds between attempts at a busy lease, jittered


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items()}


def take_lease(asg_name: str, execution: str, hold: Hold | None, *, wait_seconds: float = 20.0,
               hold_now: Hold | None = None, steal_from: str | None = None) -> GroupRecord:
    """Take the group's lease (one conditional UpdateItem), recording `hold` as this execution's plan unless an
    earlier attempt recorded one (`hold_now`: replace it, the lease being ours). Returns the record as the lease
    found it. Waits while another execution holds the lease; after `wait_seconds` the contention is retryable
    (AwsThrottled)."""
    deadline = time.monotonic() + wait_seconds
    names = {"#o": "lease_owner", "#u": "lease_until"}
    sets = ["#o = :me", "#u = :until"]
    values: dict[str, Any] = {":me": execution, ":dead": steal_from or execution}
    if hold is not None or hold_now is not None:
        names["#h"] = HOLD_ATTRIBUTE + execution
        sets.append("#h = :hold" if hold_now is not None else "#h = if_not_exists(#h, :hold)")
        values[":hold"] = hold_fields(hold_now or hold)  # type: ignore[arg-type]
    while True:
        now = time.time()
        try:
            response = client("dynamodb").update_item(
                TableName=table_name(), Key=_typed({KEY: GROUP + asg_name}), UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_not_exists(#o) OR #o IN (:me, :dead) OR #u <= :now",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_typed({**values, ":until": int(now) + LEASE_SECONDS, ":now": int(now)}),
                ReturnValues="ALL_OLD",
            )
            return record_from_item(asg_name, _plain(response.get("Attributes") or {}) or None)
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise
        if time.monotonic() > deadline:
            raise AwsThrottled(f"ASG {asg_name} is busy: another execution holds its lease")
        time.sleep(random.uniform(*_BUSY_WAIT))


def release_lease(asg_name: str, execution: str, after: GroupRecord, *, dropped: Iterable[str] = (),
                  claim_of: str | None = None) -> None:
    """Release the lease, writing the record as the section left it (its holds; `dropped` executions' holds
    removed), in one UpdateItem; with `claim_of`, the execution's claim on that instance goes in the same write."""
    fields = item_fields(after)
    names = {"#o": "lease_owner", "#u": "lease_until"}
    values: dict[str, Any] = {":me": execution}
    sets = []
    for index, (key, value) in enumerate(sorted(fields.items())):
        names[f"#f{index}"], values[f":f{index}"] = key, value
        sets.append(f"#f{index} = :f{index}")
    for index, (name, hold) in enumerate(sorted(after.holds.items())):
        names[f"#h{index}"], values[f":h{index}"] = HOLD_ATTRIBUTE + name, hold_fields(hold)
        sets.append(f"#h{index} = :h{index}")
    removes = ["#o", "#u"]
    if claim_of is not None:  # the execution ends with this section: its claim goes in the same write
        names["#c"] = CLAIM + claim_of
        removes.append("#c")
    for index, name in enumerate(sorted(set(dropped) - set(after.holds))):
        names[f"#d{index}"] = HOLD_ATTRIBUTE + name
        removes.append(f"#d{index}")
    for unset in ("max_set_to", "left_desired", "left_max"):
        if unset not in fields:
            names[f"#{unset}"] = unset
            removes.append(f"#{unset}")
    client("dynamodb").update_item(
        TableName=table_name(), Key=_typed({KEY: GROUP + asg_name}),
        UpdateExpression=f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
        ConditionExpression="#o = :me", ExpressionAttributeNames=names, ExpressionAttributeValues=_typed(values),
    )


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: `holder` is the execution whose claim stood against ours (None: the instance is ours
    now); `others` are the instances other executions hold unexpired claims on in the same group (being
    replaced), as the group's record stood right after our write, so of two claims made together exactly one
    sees the other."""

    holder: str | None
    others: frozenset[str] = frozenset()


def claim(asg_name: str, instance_id: str, execution: str, *, now: float | None = None,
          seconds: int = CLAIM_SECONDS) -> Claim:
    """Claim the instance for `execution` in its group's record (one conditional UpdateItem, the lease left
    alone). A claim expires after `seconds` (an execution that died without releasing it; the sweep drops those
    sooner)."""
    at = time.time() if now is None else now
    try:
        response = client("dynamodb").update_item(
            TableName=table_name(), Key=_typed({KEY: GROUP + asg_name}), UpdateExpression="SET #c = :claim",
            ConditionExpression="attribute_not_exists(#c) OR #c.execution = :me OR #c.expires <= :now",
            ExpressionAttributeNames={"#c": CLAIM + instance_id},
            ExpressionAttributeValues=_typed({":me": execution, ":now": int(at),
                                              ":claim": {"execution": execution, "expires": int(at) + seconds}}),
            ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        held = _plain(error.response.get("Item") or {}).get(CLAIM + instance_id) or {}
        return Claim(str(held.get("execution") or "another execution"))
    item = _plain(response.get("Attributes") or {})
    others = {key[len(CLAIM):] for key, value in item.items()
              if key.startswith(CLAIM) and key != CLAIM + instance_id and isinstance(value, dict)
              and float(value.get("expires", 0)) > at}
    return Claim(None, frozenset(others))


def release_claim(asg_name: str, instance_id: str, execution: str) -> bool:
    """Drop this execution's claim on the instance; False when the claim is someone else's (left alone)."""
    try:
        client("dynamodb").update_item(
            TableName=table_name(), Key=_typed({KEY: GROUP + asg_name}), UpdateExpression="REMOVE #c",
            ConditionExpression="attribute_exists(#c) AND #c.execution = :me",
            ExpressionAttributeNames={"#c": CLAIM + instance_id}, ExpressionAttributeValues=_typed({":me": execution}),
        )
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def claim_rollout(asg_name: str, wanted: RolloutClaim, *, now: float | None = None) -> str | None:
    """Claim the group for one rollout (one conditional UpdateItem on its record, the lease left alone): None when
    the group is ours now (or already was: a retried Plan), else the rollout whose unexpired claim stands."""
    at = time.time() if now is None else now
    try:
        client("dynamodb").update_item(
            TableName=table_name(), Key=_typed({KEY: GROUP + asg_name}), UpdateExpression="SET #r = :claim",
            ConditionExpression="attribute_not_exists(#r) OR #r.execution = :me OR #r.expires <= :now",
            ExpressionAttributeNames={"#r": ROLLOUT_CLAIM},
            ExpressionAttributeValues=_typed({":me": wanted.execution, ":now": int(at), ":claim": wanted.fields()}),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        held = rollout_claim_from(_plain(error.response.get("Item") or {}))
        return held.execution if held else "another rollout"
    return None


def release_rollout(asg_name: str, execution: str) -> bool:
    """Drop the group's rollout claim if it is this rollout's; False when it is not (someone else's, or gone)."""
    try:
        client("dynamodb").update_item(
            TableName=table_name(), Key=_typed({KEY: GROUP + asg_name}), UpdateExpression="REMOVE #r",
            ConditionExpression="#r.execution = :me", ExpressionAttributeNames={"#r": ROLLOUT_CLAIM},
            ExpressionAttributeValues=_typed({":me": execution}),
        )
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def group_items() -> list[dict[str, Any]]:
    """Every group record, claims included (one paginated Scan; the sweep's read)."""
    pages = client("dynamodb").get_paginator("scan").paginate(
        TableName=table_name(), FilterExpression="begins_with(#k, :p)",
        ExpressionAttributeNames={"#k": KEY}, ExpressionAttributeValues={":p": {"S": GROUP}},
    )
    return [_plain(item) for page in pages for item in page["Items"]]


def claims_in(item: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(instance id, execution, epoch seconds claimed) of each claim in a group record item."""
    return [(key[len(CLAIM):], str(value.get("execution", "")), float(value.get("expires", 0)) - CLAIM_SECONDS)
            for key, value in item.items() if key.startswith(CLAIM) and isinstance(value, dict)]


@dataclass
class Section:
    """One change to a group under its lease: the group as read (again under the lease when the read made before
    it was stale), the record as the lease found it, and the plan (None: the section adds nothing)."""

    asg_name: str
    execution: str
    group: Group
    found: GroupRecord
    take: Take | None

    def reread(self) -> Group:
        self.group = describe_group(self.asg_name)
        return self.group

    def release(self, after: GroupRecord, *, dropped: Iterable[str] = (), claim_of: str | None = None) -> None:
        release_lease(self.asg_name, self.execution, after, dropped=dropped, claim_of=claim_of)


def begin_section(asg_name: str, execution: str, group: Group,
                  plan: Callable[[Group], Take] | None = None, *, steal_from: str | None = None) -> Section:
    """Take the lease with the plan made from `group` (read before the lease, so the common case costs no second
    read). A retry finishes the plan it recorded; a stale read is made again under the lease and re-planned."""
    take = planned_from(plan(group), group) if plan else None
    found = take_lease(asg_name, execution, take.hold if take else None, steal_from=steal_from)
    section = Section(asg_name, execution, group, found, take)
    recorded = found.holds.get(execution)
    replan = recorded is not None and plan is not None and unconfirmed(recorded, found, execution)
    stale = not read_is_current(group, found)
    if stale:
        section.reread()
    if plan is None:
        return section
    if recorded is not None and not replan:  # an earlier attempt of this section planned (and maybe made) these
        section.take = retry_take(section.group, recorded)
    elif stale or replan:  # plan from the group as it is under the lease, and record that plan before any write
        section.take = confirmed(plan(section.group))
        take_lease(asg_name, execution, None, hold_now=section.take.hold)
    return section
