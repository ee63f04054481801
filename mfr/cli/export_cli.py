"""``mfr-export``: turn trained models into verified, deployable packages."""

from __future__ import annotations

from pathlib import Path

import click

from mfr.cli.common import MfrGroup, echo_json, log, require_extra
from mfr.registry import MODELS


@click.group(cls=MfrGroup)
@click.version_option(package_name="mfr")
def cli() -> None:
    """Export PyTorch face models to ONNX packages (later: INT8 calibration and engines).

    Every command writes a model package: the model file plus manifest.json with the preprocessing
    spec, hashes, versions and measured figures. Outputs appear whole or not at all.
    """


@cli.command("onnx")
@click.option("--model", "model_name", required=True, metavar="NAME",
              help=f"Registered model: {', '.join(MODELS)}.")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Checkpoint (state_dict) to load; default: the weights shipped with mfr, if any.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Package directory to write.")
@click.option("--opset", type=click.IntRange(min=17), default=17, show_default=True, help="ONNX opset.")
@click.option("--parity-samples", type=click.IntRange(min=1), default=None,
              help="Real inputs for the parity check [default: 64 LFW faces, or 8 photos for detectors].")
@click.option("--force", is_flag=True, help="Replace an existing non-empty output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
def onnx_command(model_name: str, weights: Path | None, out: Path, opset: int, parity_samples: int | None,
                 force: bool, as_json: bool) -> None:
    """Export a model to DIR/model.onnx + DIR/manifest.json and verify it.

    The ONNX file gets a dynamic batch axis (and dynamic height/width for detectors), passes the ONNX
    checker and shape inference, and must reproduce torch on real faces (LFW, or demo photos for
    detectors) with min cosine >= 0.9999 through ONNX Runtime, else nothing is written.
    """
    from mfr.registry import get_model_entry

    entry = get_model_entry(model_name)  # unknown names fail before torch is imported
    require_extra("torch", "export")
    require_extra("onnx", "export")
    from mfr.export.package import OnnxPackageExporter

    samples = parity_samples or (8 if entry.kind == "detection" else 64)
    manifest = OnnxPackageExporter(model=model_name, out=out, weights=weights, opset=opset,
                                   parity_samples=samples, force=force)(log=log)
    if as_json:
        echo_json(manifest.to_dict())
        return
    parity = manifest.parity
    assert parity is not None
    click.echo(f"wrote {out / manifest.files['onnx']} and {out / 'manifest.json'}")
    click.echo(f"parity vs torch on {parity.data}: min cosine {parity.min_cosine:.7f}, "
               f"max abs diff {parity.max_abs_diff:.3g}")


if __name__ == "__main__":
    cli()
