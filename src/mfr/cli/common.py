"""What every mfr command shares: user errors become one clear line and exit code 1."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        """Also says, on stderr, when an option is given by an older spelling (a ``HiddenAliases`` name)."""
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            for option in command.params:
                if isinstance(option, HiddenAliases):
                    option.note_older_spellings(rest)
        return name, command, rest


MfrGroup.group_class = MfrGroup  # subgroups (mfr bench, mfr gallery ...) behave the same


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


def max_pixels_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--max-pixels``: the largest image decoded, checked from its header before decoding."""
    from mfr.runtime.image_io import MAX_PIXELS

    return click.option("--max-pixels", type=click.IntRange(1), default=MAX_PIXELS, show_default=True,
                        help="Refuse images that declare more pixels than this, before decoding them (a small "
                             "file can declare a huge image).")(command)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def progress_bar(items: Iterable[Any], total: int, label: str) -> Iterator[Any]:
    """A click progress bar on stderr, in the (items, total, label) shape the library code accepts."""
    with click.progressbar(items, length=total, label=label, file=sys.stderr) as bar:
        yield from bar


@dataclass(frozen=True)
class ReportOutput:
    """Where a measuring command's results go. ``--json`` prints them as JSON on stdout, as in every other
    command (the tables then go to stderr, so stdout is one JSON document); ``--report FILE`` writes them to
    FILE. ``--json FILE``, the older spelling of ``--report FILE``, still writes FILE."""

    stdout_json: bool
    file: Path | None

    def text(self, text: str) -> None:
        """Tables and lines for people: stdout, or stderr while stdout carries the JSON."""
        click.echo(text, err=self.stdout_json)

    def data(self, data: Any) -> None:
        """The results; a dict gains the command line that produced it (for the docs' figures)."""
        command = command_line()
        if isinstance(data, dict) and command is not None:
            data = {**data, "command": command}
        if self.file is not None:
            from mfr.atomic import write_json_atomic

            write_json_atomic(self.file, data)
            log(f"wrote {self.file}")
        if self.stdout_json:
            click.echo(json.dumps(data, indent=2, default=str))


def command_line() -> str | None:
    """How this process was started, as a user would type it (None when not run as ``mfr``/``mfr-export``)."""
    import shlex

    program = Path(sys.argv[0]).name
    return shlex.join([program, *sys.argv[1:]]) if program in ("mfr", "mfr-export") else None


def report_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` and ``--report FILE`` for a command that measures; it receives them as ``output``."""

    @functools.wraps(command)
    def wrapped(*args: Any, json_out: str | None, report_file: Path | None, **kwargs: Any) -> Any:
        stdout_json = json_out == "-"
        file = report_file or (Path(json_out) if json_out is not None and not stdout_json else None)
        if json_out is not None and not stdout_json:
            click.echo("Note: --json FILE is an older spelling of --report FILE; it still works in this release.",
                       err=True)
        return command(*args, output=ReportOutput(stdout_json, file), **kwargs)

    wrapped = click.option("--report", "report_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
                           help="Write the results as JSON to this file.")(wrapped)
    return click.option("--json", "json_out", is_flag=False, flag_value="-", default=None, metavar="",
                        help="Print the results as JSON on stdout (the tables go to stderr).")(wrapped)


class HiddenAliases(click.Option):
    """An option whose first name alone is shown in ``--help``; its other names (older spellings) still work,
    with a note on stderr naming the current one, so scripts keep running while their authors learn it."""

    def note_older_spellings(self, args: list[str]) -> None:
        for older in self.opts[1:]:
            if any(arg == older or arg.startswith(f"{older}=") for arg in args):
                click.echo(f"Note: {older} is an older spelling of {self.opts[0]}; it still works in this "
                           f"release.", err=True)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        names = self.opts
        self.opts = names[:1]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = names


class SectionedGroup(MfrGroup):
    """A group whose ``--help`` lists its commands by section, in the order a user needs them (``sections``:
    title -> command names); a command in no section is listed last, under "Other"."""

    sections: ClassVar[dict[str, list[str]]] = {}

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        found = {name: self.get_command(ctx, name) for name in self.list_commands(ctx)}
        commands = {name: command for name, command in found.items() if command is not None and not command.hidden}
        listed = {name for names in self.sections.values() for name in names}
        sections = [*self.sections.items(), ("Other", sorted(set(commands) - listed))]
        width = formatter.width - 6 - max((len(name) for name in commands), default=0)
        for title, names in sections:
            rows = [(name, commands[name].get_short_help_str(width)) for name in names if name in commands]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def refuse_options_outside(ctx: click.Context, mode: str, scopes: dict[str, tuple[str, ...]],
                           value: str | None = None) -> None:
    """An option given on the command line whose scope does not hold the value of ``mode`` (an option's value,
    or ``value``: e.g. the kind of the package given) is an error (a command with modes never ignores an
    option silently)."""
    label = f"--{mode}" if value is None else mode
    value = value if value is not None else ctx.params[mode]
    for name, values in scopes.items():
        source = ctx.get_parameter_source(name)
        if value not in values and source is not None and source != click.core.ParameterSource.DEFAULT:
            option = next(p for p in ctx.command.params if p.name == name)
            name = "/".join(option.opts[:1] + getattr(option, "secondary_opts", []))
            raise click.UsageError(f"{name} applies to {label} {', '.join(values)}; not to {value}")
