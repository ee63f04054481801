"""What every mfr command shares: user errors become one clear line and exit code 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import click

from mfr.errors import MfrError


class MfrGroup(click.Group):
    """A click group whose commands report ``MfrError`` as ``Error: <message>`` with exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MfrError as exc:
            raise click.ClickException(str(exc)) from exc


def require_extra(module: str, extra: str) -> None:
    """Fail with an install hint if an optional dependency is missing."""
    try:
        __import__(module)
    except ImportError:
        raise MfrError(f"this command needs {module}: pip install 'mfr[{extra}]'") from None


def int_list(text: str, option: str, what: str, positive: bool = False) -> list[int]:
    """The comma-separated integers of a CLI option ("" gives none), or a usage error naming the option."""
    try:
        values = [int(part) for part in text.split(",")] if text.strip() else []
    except ValueError:
        raise click.BadParameter(f"expected comma-separated {what}, got {text!r}", param_hint=option) from None
    if positive and (not values or min(values) < 1):
        raise click.BadParameter(f"{what} must be positive", param_hint=option)
    return values


def log(message: str) -> None:
    """Progress messages go to stderr, so ``--json`` output on stdout stays machine-readable."""
    click.echo(message, err=True)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def progress_bar(items: Iterable[Any], total: int, label: str) -> Iterator[Any]:
    """A click progress bar on stderr, in the (items, total, label) shape the library code accepts."""
    with click.progressbar(items, length=total, label=label, file=sys.stderr) as bar:
        yield from bar
