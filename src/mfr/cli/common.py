"""What every mfr command shares: user errors become one clear line and exit code 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from mfr.errors import MfrError
from mfr.runtime.engine_triton import is_triton_url


class MfrGroup(click.Group):
    """A click group whose commands report ``MfrError`` as ``Error: <message>`` with exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MfrError as exc:
            raise click.ClickException(str(exc)) from exc


class ModelLocation(click.ParamType):
    """A model to run: a package or engine directory (a ``Path``), or the address of a model a Triton server
    serves (``triton://HOST:PORT/MODEL``, kept as text: a path would fold its ``//``)."""

    name = "DIR|triton://HOST:PORT/MODEL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path | str:
        if isinstance(value, Path):
            return value
        text = str(value)
        if is_triton_url(text):
            return text
        if "://" in text:
            self.fail(f"{text!r} is not a model address: a served model is triton://HOST[:PORT]/MODEL (HTTP) or "
                      f"triton+grpc://HOST[:PORT]/MODEL", param, ctx)
        return Path(text)


MODEL_LOCATION = ModelLocation()


def local_only(locations: Iterable[Path | str]) -> list[Path]:
    """The local directories among model locations (served models are built and checked by their server)."""
    return [Path(location) for location in locations if not is_triton_url(location)]


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
