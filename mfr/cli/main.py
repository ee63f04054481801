"""``mfr``: use model packages (list models, inspect packages; later eval, bench, enroll, run)."""

from __future__ import annotations

from pathlib import Path

import click

from mfr.cli.common import MfrGroup, echo_json
from mfr.manifest import load_manifest
from mfr.registry import MODELS


@click.group(cls=MfrGroup)
@click.version_option(package_name="mfr")
def cli() -> None:
    """Masked face recognition at the edge: inspect, evaluate and run model packages."""


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models_command(as_json: bool) -> None:
    """List the registered models with their preprocessing specs."""
    if as_json:
        echo_json({name: {"kind": e.kind, "description": e.description, "spec": e.spec.to_dict(),
                          "default_weights": None if e.default_weights is None else str(e.default_weights)}
                   for name, e in MODELS.items()})
        return
    for name, entry in MODELS.items():
        size = "any size" if entry.spec.input_size is None else "x".join(map(str, entry.spec.input_size))
        weights = "shipped weights" if entry.default_weights else "bring your own weights"
        click.echo(f"{name:20s} {entry.kind:12s} {size:9s} {entry.spec.color_order}  {weights}  - {entry.description}")


@cli.command("info")
@click.argument("package", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest as JSON.")
def info_command(package: Path, as_json: bool) -> None:
    """Show what a model package holds: model, spec, tensors and measured figures."""
    manifest = load_manifest(package)
    if as_json:
        echo_json(manifest.to_dict())
        return
    click.echo(f"model     {manifest.model} ({manifest.kind}), files {manifest.files}")
    click.echo(f"spec      {manifest.spec.to_dict()}")
    for label, tensors in (("input", manifest.inputs), ("output", manifest.outputs)):
        for t in tensors:
            click.echo(f"{label:9s} {t.name} {t.shape} {t.dtype}")
    if manifest.parity is not None:
        click.echo(f"parity    min cosine {manifest.parity.min_cosine:.7f}, max abs diff "
                   f"{manifest.parity.max_abs_diff:.3g} on {manifest.parity.data}")
