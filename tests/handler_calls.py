"""Which AWS API calls a Lambda handler can make, read from the source (AST), for the IAM drift tests.

Starting at the handler function, follow every function it references in tasks/ (local or imported with
`from tasks.x import y`) and collect the boto3 calls made through `tasks.aws.clients.client("service")`:
`client("ec2").run_instances(...)`, `asg = client("autoscaling"); asg.attach_instances(...)`,
`client("ec2").get_paginator("describe_instances")`, `...get_waiter("instance_running")`. Each becomes an IAM
action (`ec2:RunInstances`) through botocore's own service model. A `client(...)` used any other way, a
non-literal service or operation, or boto3 used directly are reported as problems, so no call can hide.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
FACTORY_MODULE = "tasks.aws.clients"  # defines client(); its own boto3 use is the one allowed
FACTORY = "client"


@dataclass
class Calls:
    actions: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)


@functools.cache
def _boto3_client(service: str):  # type: ignore[no-untyped-def]
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


# Services whose IAM prefix is not their signing name (CloudWatch signs as `monitoring`, authorizes `cloudwatch:`).
IAM_PREFIX = {"monitoring": "cloudwatch"}


def _prefix(client) -> str:  # type: ignore[no-untyped-def]
    name = client.meta.service_model.signing_name
    return IAM_PREFIX.get(name, name)


def iam_action(service: str, method: str) -> str:
    """`("stepfunctions", "start_execution")` -> `states:StartExecution` (IAM prefix = the signing name, but for
    the services in IAM_PREFIX)."""
    client = _boto3_client(service)
    operation = client.meta.method_to_api_mapping[method]
    return f"{_prefix(client)}:{operation}"


def _waiter_action(service: str, waiter: str) -> str:
    client = _boto3_client(service)
    operation = client.get_waiter(waiter).config.operation
    return f"{_prefix(client)}:{operation}"


@functools.cache
def _module(name: str, root: Path) -> tuple[ast.Module, str] | None:
    path = root / Path(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            source = candidate.read_text()
            return ast.parse(source, filename=str(candidate)), str(candidate.relative_to(root))
    return None


def _imports(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """Local name -> (module, attribute) for `from tasks.x import y [as z]` and `import tasks.x as z` anywhere in
    the module (for the latter, `z.f` then resolves to `tasks.x.f`)."""
    found: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tasks":
            for alias in node.names:
                found[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tasks.") and alias.asname:
                    parent, _, last = alias.name.rpartition(".")
                    found[alias.asname] = (parent, last)
    return found


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _scan_function(node: ast.AST, where: str, calls: Calls, imports: dict[str, tuple[str, str]]) -> None:
    """Record the client calls made in one function body."""
    factory_names = {local for local, (module, attr) in imports.items()
                     if module == FACTORY_MODULE and attr == FACTORY}
    parents = {child: parent for parent in ast.walk(node) for child in ast.iter_child_nodes(parent)}
    bound: dict[str, str] = {}  # variable -> service, from `x = client("svc")`
    factory_calls = [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                     and n.func.id in factory_names]
    for call in factory_calls:
        service = _literal(call.args[0] if call.args else None)
        parent = parents.get(call)
        if service is None:
            calls.problems.append(f"{where}: client() with a non-literal service")
        elif isinstance(parent, ast.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0], ast.Name):
            bound[parent.targets[0].id] = service
        elif not (isinstance(parent, ast.Attribute) and isinstance(parents.get(parent), ast.Call)):
            calls.problems.append(f"{where}: client({service!r}) used other than by calling a method on it")

    for call in ast.walk(node):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            continue
        target, method = call.func.value, call.func.attr
        if isinstance(target, ast.Call) and target in factory_calls:
            service = _literal(target.args[0] if target.args else None)
        elif isinstance(target, ast.Name) and target.id in bound:
            service = bound[target.id]
        else:
            continue
        if service is None:
            continue
        if method in ("get_paginator", "get_waiter"):
            operation = _literal(call.args[0] if call.args else None)
            if operation is None:
                calls.problems.append(f"{where}: {method}() with a non-literal name")
            elif method == "get_paginator":
                calls.actions.add(iam_action(service, operation))
            else:
                calls.actions.add(_waiter_action(service, operation))
        elif method in _boto3_client(service).meta.method_to_api_mapping:
            calls.actions.add(iam_action(service, method))
        elif method not in ("can_paginate", "close"):
            calls.problems.append(f"{where}: {service}.{method} is not a {service} API operation")

    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "boto3":
            calls.problems.append(f"{where}: boto3.{sub.attr} used directly; use tasks.aws.clients.client()")


def handler_calls(handler: str, root: Path = ROOT) -> Calls:
    """All IAM actions reachable from `handler` (`tasks.validate.handler`) through tasks/ code."""
    calls = Calls()
    module, _, name = handler.rpartition(".")
    pending = [(module, name)]
    seen: set[tuple[str, str]] = set()
    while pending:
        module, name = pending.pop()
        if (module, name) in seen or module == FACTORY_MODULE:
            continue
        seen.add((module, name))
        parsed = _module(module, root)
        if parsed is None:
            continue
        tree, path = parsed
        definitions, imports = _definitions(tree), _imports(tree)
        node = definitions.get(name)
        if node is None:
            if name in imports:  # re-exported
                pending.append(imports[name])
            continue
        calls.visited.append(f"{module}.{name}")
        _scan_function(node, f"{path}:{name}", calls, imports)
        for ref in ast.walk(node):
            if isinstance(ref, ast.Name):
                if ref.id in definitions and ref.id != name:
                    pending.append((module, ref.id))
                elif ref.id in imports:
                    pending.append(imports[ref.id])
            elif isinstance(ref, ast.Attribute) and isinstance(ref.value, ast.Name) and ref.value.id in imports:
                imported_module, attr = imports[ref.value.id]
                pending.append((f"{imported_module}.{attr}", ref.attr))  # `from tasks import x; x.f()`
    return calls
