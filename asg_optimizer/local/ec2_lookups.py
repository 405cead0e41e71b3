"""EC2 instances and their tags found by id in constant time, answering as moto does.

moto finds an instance by walking every reservation (and copying each one) on every lookup: RunInstances looks
its own new instance up to attach its root volume, and every DescribeInstances with ids builds a map of the whole
account. Building a 1,000-group fleet of 10,000 instances was quadratic (minutes in moto alone). moto never
removes an instance from its reservation (a terminated one stays, as in AWS for about an hour), so an index by id
only ever grows: a miss rebuilds it once from the reservations, then answers as moto would — the same instance
objects, the same order, the same InvalidInstanceID.NotFound for ids that do not exist.

Tags likewise: every resource's tags are read by matching a `resource-id` filter against every tag of the account
(so serializing N instances was N x all tags). The filter is an exact match, so the resource's own entry in the
tag store, in its order, is the same answer.
"""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

from asg_optimizer.local.patching import Patches

_patches = Patches()


def _index(backend: InstanceBackend, wanted: list[str]) -> dict[str, Any]:
    """The backend's id → instance map, rebuilt when an id asked for is not in it yet."""
    index: dict[str, Any] = backend.__dict__.setdefault("_embedded_instance_index", {})
    if any(instance_id not in index for instance_id in wanted):
        for reservation in list(backend.reservations.values()):
            for instance in reservation.instances:
                index[instance.id] = instance
    return index


def _get_instance(backend: InstanceBackend, instance_id: str) -> Any:
    found = _index(backend, [instance_id]).get(instance_id)
    if found is None:
        raise InvalidInstanceIdError(instance_id)
    return found


def _get_instance_by_id(backend: InstanceBackend, instance_id: str) -> Any:
    return _index(backend, [instance_id]).get(instance_id)


def _get_multi_instances_by_id(backend: InstanceBackend, instance_ids: list[str], filters: Any = None) -> list[Any]:
    index = _index(backend, list(instance_ids))
    missing = [instance_id for instance_id in instance_ids if instance_id not in index]
    if missing:
        raise InvalidInstanceIdError(missing)
    return [index[i] for i in instance_ids if index[i].applies(filters)]


def _get_tags(resource: Any) -> list[dict[str, str]]:
    if not resource.id:
        return []
    tags = resource.ec2_backend.tags.get(resource.id) or {}
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource.id), "")
    return [{"resource_id": resource.id, "key": k, "value": v, "resource_type": kind} for k, v in list(tags.items())]


_PATCHES: dict[type, dict[str, Any]] = {
    InstanceBackend: {
        "get_instance": _get_instance,
        "get_instance_by_id": _get_instance_by_id,
        "get_multi_instances_by_id": _get_multi_instances_by_id,
    },
    TaggedEC2Resource: {"get_tags": _get_tags},
}


def install() -> None:
    _patches.install(_patch)


def _patch(patches: Patches) -> None:
    for owner, replacements in _PATCHES.items():
        patches.replace(owner, **replacements)


def uninstall() -> None:
    _patches.undo()
