"""``mfr-export``: turn trained models into verified, deployable packages."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mfr.cli.common import (
    HiddenAliases,
    MfrGroup,
    ReportOutput,
    echo_json,
    log,
    progress_bar,
    refuse_options_outside,
    report_options,
    require_extra,
)
from mfr.cli.serve_cli import batching_options, check_max_batch
from mfr.export.engine_builders import backend_choices
from mfr.manifest import BatchProfile, CalibrationRecord
from mfr.registry import MODELS

DEFAULT_PROFILE = BatchProfile()


@click.group(cls=MfrGroup)
@click.version_option(package_name="mfr")
def cli() -> None:
    """Export PyTorch face models to ONNX packages, calibrate them to INT8, build engines.

    Every command writes a model package: the model file plus manifest.json with the preprocessing
    spec, hashes, versions and measured figures. Outputs appear whole or not at all.
    """


@cli.command("onnx")
@click.option("--model", "model_name", required=True, metavar="NAME",
              help=f"Registered model: {', '.join(MODELS)}; or yunet (the face detector shipped as a package: "
                   "copied, for calibration).")
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
    from mfr.runtime.detectors import DETECTORS

    shipped = {name: entry.default_package() for name, entry in DETECTORS.items() if entry.shipped is not None}
    if model_name in shipped:  # a model shipped as a package already (no torch): a verified copy of it
        from mfr.export.shipped import copy_package

        manifest = copy_package(Path(str(shipped[model_name])), out, force, log)
        if as_json:
            echo_json(manifest.to_dict())
        return
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


# the options each kind of package takes (the others refuse them rather than ignore them)
CALIBRATE_SCOPES: dict[str, tuple[str, ...]] = {
    "masked_share": ("recognition",), "detector_package": ("recognition",), "max_drop": ("recognition",),
    "min_cosine": ("recognition",), "no_lfw_check": ("recognition",), "cache_dir": ("recognition",),
    "max_recall_drop": ("detection",), "max_nme": ("detection",), "heldout_frames": ("detection",),
    "detect_size": ("detection",)}


@cli.command("calibrate")
@click.option("--model", "--package", "package", cls=HiddenAliases, type=click.Path(path_type=Path), required=True,
              help="FP32 package: a recogniser, or a face detector (retinaface-mnet025 from mfr-export onnx; yunet "
                   "from mfr-export onnx --model yunet).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Calibrated package to write.")
@click.option("--num-images", type=click.IntRange(min=1), default=None,
              help="Calibration faces (at least 64) [default: 512]; for a detector, calibration frames [default: 96].")
@click.option("--masked-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of calibration faces given a synthetic mask.")
@click.option("--method", type=click.Choice(["percentile", "minmax", "entropy"]), default="percentile",
              show_default=True, help="How ranges are derived from the collected statistics.")
@click.option("--percentile", type=click.FloatRange(90, 100), default=99.999, show_default=True,
              help="Share of each tensor's values inside its range (--method percentile).")
@click.option("--calib-dir", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Your own images: for a recogniser, faces (aligned 112x112 crops on the ArcFace template, or "
                   "photos to detect and align); for a detector, whole photos or frames from your cameras.")
@click.option("--detector-package", type=click.Path(path_type=Path), default=None,
              help="RetinaFace package used to align --calib-dir photos (default: exported into the cache).")
@click.option("--max-drop", type=click.FloatRange(min=0), default=0.10, show_default=True,
              help="Largest acceptable accuracy drop of the INT8 model on LFW folds 1-5, in percentage points "
                   "(folds 6-10, masked LFW and MFR2 are never looked at: judge the result on them).")
@click.option("--min-cosine", type=click.FloatRange(0, 1), default=0.997, show_default=True,
              help="Held-out embedding cosine (INT8 vs FP32) the ONNX Runtime models must also reach before the "
                   "fallback stops. Each layer kept in float costs speed on a CPU (a float island in an INT8 "
                   "graph adds conversions and layout changes around it): a model that cannot reach the "
                   "default within the budget keeps every layer of it; a lower target stops once the LFW "
                   "drop is within --max-drop.")
@click.option("--max-recall-drop", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Detector: largest share of the FP32 model's faces (held-out frames) the INT8 model may miss, "
                   "in percentage points.")
@click.option("--max-nme", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Detector: largest landmark error of the INT8 model against FP32's landmarks, in % of the "
                   "inter-ocular distance.")
@click.option("--heldout-frames", type=click.IntRange(min=4), default=48, show_default=True,
              help="Detector: frames the fallback is judged on, never calibrated on.")
@click.option("--detect-size", type=click.IntRange(160, 4096), default=640, show_default=True,
              help="Detector: the longest side frames are fitted to, as mfr watch --detect-size.")
@click.option("--fallback-budget", type=click.IntRange(min=0), default=8, show_default=True,
              help="Most layers that may be kept in floating point.")
@click.option("--no-lfw-check", is_flag=True, help="Steer the fallback by the held-out cosine only, without LFW.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="Embedding cache directory.")
@click.option("--force", is_flag=True, help="Replace an existing non-empty output directory.")
@report_options
def calibrate_command(package: Path, out: Path, num_images: int | None, masked_share: float, method: str,
                      percentile: float, calib_dir: Path | None, detector_package: Path | None, max_drop: float,
                      min_cosine: float, max_recall_drop: float, max_nme: float, heldout_frames: int,
                      detect_size: int, fallback_budget: int, no_lfw_check: bool, seed: int,
                      cache_dir: Path | None, force: bool, output: ReportOutput) -> None:
    """INT8-calibrate a package on real inputs: model.int8.onnx (ONNX Runtime; model.int8.u8.onnx for x86
    CPUs without VNNI), model.int8.trt.onnx (TensorRT explicit Q/DQ) and calibration.cache (TensorRT
    implicit INT8), all from one set of ranges.

    A recogniser: calibration faces are LFW people who appear in no evaluation pair, half of them masked.
    The most sensitive layers stay in floating point until the accuracy drop on LFW folds 1-5 is within
    --max-drop and the held-out cosine reaches --min-cosine. Judge the result where nothing was tuned:
    mfr eval --model OUT --precision both --dataset lfw --folds 6,7,8,9,10 (and lfw-masked, mfr2).

    A face detector: calibration frames come from generated clips of their own seeds (or --calib-dir),
    fitted to --detect-size; layers stay in floating point until, on held-out frames, the INT8 model misses
    at most --max-recall-drop of the FP32 model's faces and its landmarks lie within --max-nme of FP32's.
    Judge it with mfr eval --model OUT --dataset detection --precision both.
    """
    from mfr.manifest import load_manifest

    kind = load_manifest(package).kind
    refuse_options_outside(click.get_current_context(), "packages of kind", CALIBRATE_SCOPES, value=kind)
    if kind == "detection":
        record = detector_calibration(package, out, num_images or 96, heldout_frames, method, percentile, calib_dir,
                                      detect_size, max_recall_drop, max_nme, fallback_budget, seed, force)
    else:
        record = recognition_calibration(package, out, num_images or 512, masked_share, method, percentile,
                                         calib_dir, detector_package, max_drop, min_cosine, fallback_budget,
                                         no_lfw_check, seed, cache_dir, force)
    output.text(f"wrote {out} ({record.images} {'frames' if kind == 'detection' else 'faces'}, "
                f"{record.method}; ranges in {record.seconds_ranges} s, total {record.seconds_total} s)")
    for label, part in (("ONNX Runtime INT8", record.onnxruntime), ("TensorRT Q/DQ", record.tensorrt_qdq)):
        last = part.chosen
        measured = (f", FP32 faces missed {last.recall_drop_pp:.2f} pp, landmark NME {last.landmark_nme_pct:.3f} % "
                    f"on {part.checked_on}" if last.recall_drop_pp is not None and last.landmark_nme_pct is not None
                    else "" if last.lfw_drop_pp is None else f", drop on {part.checked_on} {last.lfw_drop_pp:.3f} pp")
        output.text(f"{label}: {len(part.fp_layers)} layers kept FP32 {part.fp_layers}; target "
                    f"{'met' if part.target_met else 'missed'}; held-out cosine "
                    f"{last.heldout_cosine:.5f}" + measured)
    output.data(calibration_report(out, record))


def recognition_calibration(package: Path, out: Path, num_images: int, masked_share: float, method: str,
                            percentile: float, calib_dir: Path | None, detector_package: Path | None,
                            max_drop: float, min_cosine: float, fallback_budget: int, no_lfw_check: bool, seed: int,
                            cache_dir: Path | None, force: bool) -> CalibrationRecord:
    from mfr.cache import default_cache_dir
    from mfr.calibration.package import PackageCalibrator

    cache_root = cache_dir or default_cache_dir()
    detector = None
    if calib_dir is not None:
        from mfr.cli.detectors import make_detector

        detector = make_detector("retinaface", detector_package, cache_root, log)[0]
    return PackageCalibrator(
        package=package, out=out, num_images=num_images, masked_share=masked_share, method=method,
        percentile=percentile, calib_dir=calib_dir, detector=detector, max_drop_pp=max_drop,
        min_cosine=min_cosine, fallback_budget=fallback_budget, seed=seed, check_lfw=not no_lfw_check,
        cache_dir=cache_root, force=force,
    )(log=log, progress=progress_bar)


def detector_calibration(package: Path, out: Path, num_frames: int, heldout_frames: int, method: str,
                         percentile: float, calib_dir: Path | None, detect_size: int, max_recall_drop: float,
                         max_nme: float, fallback_budget: int, seed: int, force: bool) -> CalibrationRecord:
    from mfr.calibration.detector_package import DetectorCalibrator

    return DetectorCalibrator(
        package=package, out=out, num_frames=num_frames, heldout_frames=heldout_frames, method=method,
        percentile=percentile, calib_dir=calib_dir, max_side=detect_size, max_recall_drop_pp=max_recall_drop,
        max_nme_pct=max_nme, fallback_budget=fallback_budget, seed=seed, force=force,
    )(log=log, progress=progress_bar)


def calibration_report(package: Path, record: CalibrationRecord) -> dict[str, Any]:
    """The calibration record with the model it calibrated and the machine it ran on (the fallback's
    figures depend on neither, its times on the machine)."""
    from mfr.manifest import load_manifest
    from mfr.runtime.machine import fingerprint

    return {"model": load_manifest(package).model, "package": str(package), **asdict(record),
            "machine": fingerprint()}



@cli.command("build-engine")
@click.option("--package", type=click.Path(path_type=Path), required=True,
              help="Model package (from onnx, or from calibrate for --precision int8).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Engine directory to write.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True,
              help="int8 uses the package's calibrated models: model.int8.trt.onnx (TensorRT, explicit Q/DQ) or "
                   "model.int8.onnx (ONNX Runtime). fp16: TensorRT only.")
@click.option("--backend", type=click.Choice(backend_choices()), default="auto", show_default=True,
              help="auto: the first that can build here (TensorRT if it is installed and a GPU answers, else "
                   "ONNX Runtime).")
@click.option("--min-batch", type=click.IntRange(min=1), default=None,
              help=f"Smallest batch of one call [default: {DEFAULT_PROFILE.min}].")
@click.option("--opt-batch", type=click.IntRange(min=1), default=None,
              help=f"The batch size TensorRT tunes for [default: {DEFAULT_PROFILE.opt} for recognition, 1 for a "
                   f"detector; within --min-batch..--max-batch].")
@click.option("--max-batch", type=click.IntRange(min=1), default=None,
              help=f"Largest batch of one call; the runtime splits larger batches [default: {DEFAULT_PROFILE.max} "
                   f"for recognition, 1 for a detector, which is fed one frame at a time].")
@click.option("--max-side", type=click.IntRange(min=32), default=None,
              help="Detector packages: the longest image side the engine accepts (any aspect ratio up to a square; "
                   "tuned for 16:9) [default: 640, what mfr watch's --detect-size feeds]. The build prints the "
                   "I/O buffer memory of the largest shape.")
@click.option("--workspace", "workspace_mib", type=click.IntRange(min=1), default=1024, show_default=True,
              help="TensorRT builder workspace limit in MiB.")
@click.option("--timing-cache", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="TensorRT timing cache: read if it exists, written after the build (faster rebuilds).")
@click.option("--dla-core", type=click.IntRange(min=0), default=None,
              help="Run on this DLA core (Jetson), layers DLA cannot run fall back to the GPU.")
@click.option("--version-compatible", is_flag=True,
              help="TensorRT version-compatible plan: also runs on later TensorRT releases of the same major.")
@click.option("--int8-source", type=click.Choice(["qdq", "calibration-cache"]), default="qdq", show_default=True,
              help="TensorRT INT8 from the explicit Q/DQ model, or (TensorRT < 10.1) implicit INT8 from the "
                   "FP32 model and calibration.cache.")
@click.option("--int8-float", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="TensorRT INT8 (strongly typed, TensorRT >= 10): the precision of the layers left unquantized; "
                   "fp16 builds model.int8.trt.fp16.onnx.")
@click.option("--int8-weights", type=click.Choice(["auto", "s8", "u8"]), default="auto", show_default=True,
              help="ONNX Runtime INT8 on the CPU: s8 (model.int8.onnx, int8 weights) or u8 (model.int8.u8.onnx, "
                   "uint8 weights in matrix products). auto: u8 on x86 CPUs without VNNI, whose int8 kernels "
                   "saturate, s8 elsewhere. The engine is checked against the FP32 model here.")
@click.option("--force", is_flag=True, help="Replace an existing non-empty output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the engine manifest as JSON on stdout.")
def build_engine_command(package: Path, out: Path, precision: str, backend: str, min_batch: int | None,
                         opt_batch: int | None, max_batch: int | None, max_side: int | None, workspace_mib: int,
                         timing_cache: Path | None, dla_core: int | None, version_compatible: bool,
                         int8_source: str, int8_float: str, int8_weights: str, force: bool,
                         as_json: bool) -> None:
    """Build an engine for this machine: DIR/model.plan (TensorRT) or DIR/model.ort.onnx (ONNX Runtime
    optimised model) + manifest.json.

    The manifest records the backend and its version, the GPU and compute capability (or the CPU), the
    precision, the batch profile, the bindings and the source ONNX's sha256; the runtime refuses to load
    the engine on a machine that does not match. Before the directory appears, the engine is loaded as
    the runtime loads it and compared with its source ONNX on 32 real LFW faces (a detector: on demo photos).
    """
    from mfr.export.engine_package import EngineBuilder

    manifest = EngineBuilder(
        package=package, out=out, precision=precision, backend=backend,
        min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch, max_side=max_side, workspace_mib=workspace_mib,
        timing_cache=timing_cache, dla_core=dla_core, version_compatible=version_compatible,
        int8_source=int8_source, int8_float=int8_float,
        int8_weights=None if int8_weights == "auto" else int8_weights, force=force,
    )(log=log)
    if as_json:
        echo_json(manifest.to_dict())
        return
    record = manifest.engine
    assert record is not None
    parity = manifest.stages.engine_parity
    assert parity is not None
    click.echo(f"wrote {out / manifest.files['engine']}: {record.precision} {record.backend} "
               f"{record.backend_version} on {record.device}, batch {record.profile.min}-{record.profile.max}, "
               f"built in {record.build_seconds} s")
    click.echo(f"checked: {parity.checked}" + ("" if parity.min_cosine is None else
                                               f", min cosine {parity.min_cosine:.6f}"))



@cli.command("triton")
@click.option("--package", "--engine", "directory", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Model package or engine directory (ONNX Runtime or TensorRT).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Triton model repository to add the model to (created if needed).")
@click.option("--name", default=None, help="Model name in the repository [default: the manifest's model].")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default=None,
              help="Which model of a package (default fp32); an engine directory exports its own.")
@batching_options
@click.option("--kind", type=click.Choice(["gpu", "cpu"]), default="gpu", show_default=True,
              help="Where Triton runs the instances (a TensorRT plan needs gpu).")
@click.option("--int8-weights", type=click.Choice(["auto", "s8", "u8"]), default="auto", show_default=True,
              help="A package's INT8 model: int8 weights (s8) or uint8 weights (u8, for x86 CPUs without VNNI, "
                   "whose int8-weight kernels saturate). auto: s8 for --kind gpu; for --kind cpu, what this "
                   "machine's CPU needs (export on a CPU of the serving machine's kind, or choose).")
@click.option("--force", is_flag=True, help="Replace the model's folder if the repository has it.")
@click.option("--json", "as_json", is_flag=True, help="Print the written configuration's facts as JSON.")
def triton_command(directory: Path, out: Path, name: str | None, precision: str | None, max_batch: int,
                   max_queue_delay_us: int, instances: int, kind: str, int8_weights: str, force: bool,
                   as_json: bool) -> None:
    """Add a model to a Triton model repository for a full Triton install (ONNX Runtime or TensorRT backend).

    Writes OUT/NAME/config.pbtxt (platform onnxruntime_onnx or tensorrt_plan; inputs and outputs from the
    manifest; dynamic batching; instance group; the manifest as the parameter mfr_manifest, which
    triton:// clients read their preprocessing spec from) and OUT/NAME/1/model.onnx or model.plan. A TensorRT
    plan runs only on the GPU model and TensorRT version it was built with (see its manifest). To serve
    on a CPU machine without a full install, use mfr serve instead.
    """
    require_extra("tritonclient.grpc", "triton")
    from mfr.serving.model_config import BatchingOptions
    from mfr.serving.repository import ServedModel, export_platform_repository

    weights = None if int8_weights == "auto" else int8_weights
    if weights is None and kind == "gpu":
        weights = "s8"  # no saturating kernels on a GPU
    served = ServedModel.open(directory, name, precision, weights)
    backend = served.manifest.engine.backend if served.manifest.engine else "onnxruntime"
    if backend == "tensorrt" and kind == "cpu":
        raise click.BadParameter("a TensorRT plan runs on a GPU", param_hint="--kind")
    check_max_batch(served, max_batch)
    target = export_platform_repository(served, out, BatchingOptions(max_batch, max_queue_delay_us, instances, kind),
                                        force=force)
    facts = {"model": served.name, "folder": str(target), "backend": backend, "precision": served.precision,
             "source": served.model_file().name, "max_batch": max_batch, "kind": kind}
    if as_json:
        echo_json(facts)
        return
    click.echo(f"wrote {target} ({backend}, {served.precision} from {facts['source']}, max batch {max_batch}, "
               f"{instances} {kind} instance(s)); start Triton with --model-repository {out}")


@cli.command("import-ir")
@click.option("--package", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="The recognition package whose network the IR is a variant of (its spec, tensors, thresholds).")
@click.option("--ir", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The OpenVINO IR's .xml (its .bin beside it).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Engine directory to write.")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default=None,
              help="What the IR is [default: int8 if it holds FakeQuantize layers, else fp32].")
@click.option("--max-batch", type=click.IntRange(min=1), default=128, show_default=True,
              help="The largest batch one call takes.")
@click.option("--force", is_flag=True, help="Replace an existing non-empty output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the written manifest as JSON.")
def import_ir_command(package: Path, ir: Path, out: Path, precision: str | None, max_batch: int, force: bool,
                      as_json: bool) -> None:
    """Import an OpenVINO IR built elsewhere (e.g. OpenVINO's own INT8 variant of a model) as an engine
    directory run by OpenVINO's runtime on the CPU, so mfr eval and mfr bench latency measure it beside
    mfr's own engines. The IR's closeness to the package's FP32 model on real faces is recorded; mfr did
    not build it and vouches for nothing else.
    """
    from mfr.export.ir_import import IrImporter

    manifest = IrImporter(package=package, ir=ir, out=out, precision=precision, max_batch=max_batch,
                          force=force)(log=log)
    if as_json:
        echo_json(manifest.to_dict())


if __name__ == "__main__":
    cli()
