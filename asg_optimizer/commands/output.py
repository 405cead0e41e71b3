"""What every command shares: the global options it was started with, table or JSON output, and errors as
one line on stderr with exit code 2 (the operator can fix it) or 1 (AWS failed us)."""

from __future__ import annotations

import csv
import fnmatch
import functools
import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import typer
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from rich.console import Console

from asg_optimizer.aws_session import NO_CREDENTIALS, CliError, Target

# AWS saying no to who we are or what we may do: the operator fixes that (credentials, policy), not us.
_ACCESS_CODES = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InvalidSignatureException",
})


class Output(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"  # assess, status, plan, executions: one header row, one row per group, instance or execution


@dataclass
class Settings:
    """The global options, handed from the app callback to every command through the typer context."""

    target: Target
    output: Output = Output.table
    regions: list[str] = field(default_factory=list)  # every --region given, in order (target.region: the first)

    @property
    def json(self) -> bool:
        return self.output is Output.json

    @property
    def csv(self) -> bool:
        return self.output is Output.csv


def settings(ctx: typer.Context) -> Settings:
    found = ctx.find_object(Settings)
    return found if found is not None else Settings(Target())


def console() -> Console:
    """Tables as wide as COLUMNS says, else the terminal; 120 columns when piped (CI logs, files), instead of
    rich's 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return Console(width=int(columns))
    probe = Console()
    return probe if probe.is_terminal else Console(width=120)


def matching(names: Iterable[str], patterns: Sequence[str], what: str, option: str = "--asg") -> list[str]:
    """The names any of the shell-style patterns (`web-*`, `api-?`, `[ab]*`) matches, in order; a pattern that
    matches none is the operator's mistake (one line naming it)."""
    names = list(names)
    if not patterns:
        return names
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise CliError(f"{option} {pattern!r} matches no {what}")
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def print_csv(fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """One header row, then one row per item (lists joined with '; ', None as empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "; ".join(map(str, v)) if isinstance(v, list | tuple) else "" if v is None else
                         v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()})
    typer.echo(buffer.getvalue(), nl=False)


def print_json(data: Any) -> None:
    """Plain, stable JSON on stdout (no colour codes), for scripts and `jq`."""
    typer.echo(json.dumps(data, indent=2, default=str))


def now() -> datetime:
    return datetime.now(UTC)


def ago(at: datetime | None, reference: datetime | None = None) -> str:
    """`42s ago`, `5m ago`, `3h ago`, `2d ago`."""
    if at is None:
        return "-"
    seconds = max(0, int(((reference or now()) - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def duration(seconds: float) -> str:
    """`0.4s`, `12.0s`, `3m05s`, `1h02m`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


F = TypeVar("F", bound=Callable[..., Any])


def operator_command(func: F) -> F:
    """Turn the problems an operator meets into one line on stderr instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CliError as error:
            raise fail(str(error), error.exit_code) from None
        except NoCredentialsError:
            raise fail(NO_CREDENTIALS) from None
        except EndpointConnectionError as error:
            hint = " (is `asg-optimizer local serve` running?)" if "127.0.0.1" in str(error) or "localhost" in str(
                error) else ""
            raise fail(f"cannot reach AWS: {error}{hint}") from None
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            message = error.response.get("Error", {}).get("Message", "")
            raise fail(f"AWS refused {error.operation_name}: {code}: {message}",
                       2 if code in _ACCESS_CODES else 1) from None

    return wrapper  # type: ignore[return-value]
