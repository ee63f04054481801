"""Engines: build-engine on this machine (ONNX Runtime), the runtime's Engine interface, manifest checks,
bad input, mfr eval on an engine directory, mfr bench latency."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfr.cli.export_cli import cli as export_cli
from mfr.cli.main import cli as mfr_cli
from mfr.errors import EngineError, EngineMismatchError, ManifestError
from mfr.export.engine_package import EngineBuilder, rebuild_if_mismatched
from mfr.export.real_inputs import sample_faces
from mfr.manifest import BatchProfile, EngineOptions, EngineRecord, load_manifest
from mfr.runtime.engine_backends import mismatches, rebuild_command
from mfr.runtime.engine_check import MachineState
from mfr.runtime.engine_load import open_engine, open_model
from mfr.runtime.machine import GpuInfo, gpu_info, instruction_set, int8_saturates, tensorrt_version
from tests.conftest import int8_cosine_bar


def build(*args: str) -> object:
    return CliRunner().invoke(export_cli, ["build-engine", *args])


@pytest.fixture(scope="module")
def fp32_engine(mobilefacenet_package, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("engines") / "fp32"
    result = build("--package", str(mobilefacenet_package), "--out", str(out), "--backend", "onnxruntime",
                   "--max-batch", "16")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def int8_engine(calibrated, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("engines") / "int8"
    result = build("--package", str(calibrated[0]), "--out", str(out), "--precision", "int8", "--backend",
                   "onnxruntime")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def faces(mobilefacenet_package) -> np.ndarray:
    spec = load_manifest(mobilefacenet_package).spec
    return sample_faces(40, spec)


def load_engine_output(engine: Path, faces: np.ndarray) -> np.ndarray:
    with open_engine(engine) as opened:
        return opened.raw_embeddings(faces)


def copy_engine(engine: Path, tmp_path: Path) -> Path:
    target = tmp_path / engine.name
    shutil.copytree(engine, target)
    return target


def edit_record(engine: Path, **changes: object) -> None:
    path = engine / "manifest.json"
    data = json.loads(path.read_text())
    data["engine"].update(changes)
    path.write_text(json.dumps(data))


# --- building ----------------------------------------------------------------------------------------

def test_auto_takes_tensorrt_only_where_tensorrt_and_a_gpu_exist(mobilefacenet_package, tmp_path):
    result = build("--package", str(mobilefacenet_package), "--out", str(tmp_path / "auto"), "--max-batch", "4")
    assert result.exit_code == 0, result.output
    record = load_manifest(tmp_path / "auto").engine
    expected = "tensorrt" if tensorrt_version() is not None and gpu_info() is not None else "onnxruntime"
    assert record is not None and record.backend == expected


def test_an_onnxruntime_engine_has_a_full_record(fp32_engine, mobilefacenet_package):
    manifest = load_manifest(fp32_engine)
    record = manifest.engine
    assert record is not None and record.backend == "onnxruntime"
    gpu = gpu_info()
    on_gpu = record.providers[0] != "CPUExecutionProvider"  # onnxruntime-gpu's CUDA/TensorRT providers
    assert record.precision == "fp32" and record.providers[-1] == "CPUExecutionProvider"
    assert record.compute_capability == (gpu.compute_capability if on_gpu and gpu is not None else None)
    assert record.profile == BatchProfile(1, 16, 16)  # --opt-batch defaults to min(32, --max-batch)
    assert record.source_file == "model.onnx"
    assert record.source_sha256 == load_manifest(mobilefacenet_package).sha256["onnx"]
    assert manifest.files == {"engine": "model.ort.onnx"} and (fp32_engine / "model.ort.onnx").is_file()
    assert manifest.spec == load_manifest(mobilefacenet_package).spec  # the preprocessing travels along
    parity = manifest.stages.engine_parity
    assert parity is not None and parity.min_cosine is not None and parity.min_cosine >= 0.9999


def test_int8_engine_uses_the_onnxruntime_qdq_model_for_this_cpu(int8_engine, calibrated):
    record = load_manifest(int8_engine).engine
    here = instruction_set()
    scheme = "u8" if here in ("AVX2 without VNNI", "AVX-512 without VNNI") else "s8"
    assert record is not None and record.precision == "int8"
    assert record.source_file == ("model.int8.u8.onnx" if scheme == "u8" else "model.int8.onnx")
    assert (record.instruction_set, record.int8_weights) == (here, scheme)
    parity = load_manifest(int8_engine).stages.engine_parity
    assert parity is not None and parity.min_cosine is not None and parity.min_cosine >= 0.98
    assert parity.fp32_mean_cosine is not None and parity.fp32_mean_cosine >= 0.99


@pytest.mark.parametrize("cpu, scheme, source", [("AVX2 without VNNI", "u8", "model.int8.u8.onnx"),
                                                 ("AVX-512 without VNNI", "u8", "model.int8.u8.onnx"),
                                                 ("AVX-512 VNNI", "s8", "model.int8.onnx"),
                                                 ("Arm dot product", "s8", "model.int8.onnx")])
def test_the_cpu_kind_chooses_the_int8_weight_scheme(calibrated, tmp_path, cpu, scheme, source):
    # the instruction-set probe replaced: what build-engine takes from the package on that CPU (an engine
    # built so would then be refused here as a mismatch unless this CPU is of the same kind)
    builder = EngineBuilder(package=calibrated[0], out=tmp_path / "e", precision="int8", instruction_set=cpu)
    chosen, _ = builder.source_files(load_manifest(calibrated[0]), calibrated[0], "onnxruntime")
    assert (builder.weight_scheme(), chosen.name) == (scheme, source)
    forced = replace(builder, int8_weights="s8" if scheme == "u8" else "u8")  # --int8-weights overrides the probe
    assert forced.source_files(load_manifest(calibrated[0]), calibrated[0], "onnxruntime")[0].name != source


def test_an_int8_cpu_engine_moved_to_a_cpu_of_the_other_kind_is_a_mismatch():
    record = EngineRecord(backend="onnxruntime", backend_version="1.32.0", device="AMD EPYC", compute_capability=None,
                          providers=["CPUExecutionProvider"], precision="int8", profile=BatchProfile(1, 32, 128),
                          source_package="/m/mfn-int8", source_file="model.int8.onnx", source_sha256="0" * 64,
                          instruction_set="AVX-512 VNNI", int8_weights="s8")
    machine = MachineState(tensorrt=None, onnxruntime="1.32.1", providers=["CPUExecutionProvider"],
                           instruction_set="AVX-512 VNNI")
    assert mismatches(record, machine) == []
    assert mismatches(record, replace(machine, instruction_set="AVX-VNNI")) == []  # VNNI either way
    found = " | ".join(mismatches(record, replace(machine, instruction_set="AVX2 without VNNI")))
    assert "INT8 built for a CPU with AVX-512 VNNI (s8 weights); this CPU has AVX2 without VNNI" in found
    u8 = replace(record, source_file="model.int8.u8.onnx", instruction_set="AVX2 without VNNI", int8_weights="u8")
    assert mismatches(u8, replace(machine, instruction_set="AVX-512 without VNNI")) == []
    assert "for which INT8 is built with s8 weights" in " | ".join(mismatches(u8, machine))
    # a scheme forced with --int8-weights binds the engine to the CPU kind it was built on, like any other
    forced = replace(record, source_file="model.int8.u8.onnx", int8_weights="u8")
    assert mismatches(forced, machine) == [] and mismatches(forced, replace(machine, instruction_set="AVX2 without "
                                                                                 "VNNI")) != []
    # FP32 CPU engines carry no weight scheme: any CPU will do
    fp32 = replace(record, precision="fp32", int8_weights=None)
    assert mismatches(fp32, replace(machine, instruction_set="AVX2 without VNNI")) == []


def test_profile_must_be_ordered(mobilefacenet_package, tmp_path):
    result = build("--package", str(mobilefacenet_package), "--out", str(tmp_path / "e"),
                   "--opt-batch", "64", "--max-batch", "8")
    assert result.exit_code == 1 and "min <= opt <= max" in result.output
    assert not (tmp_path / "e").exists()


def test_int8_without_a_calibrated_package_names_the_missing_model(mobilefacenet_package, tmp_path):
    """The model an INT8 engine needs on this CPU: the uint8-weight one where int8 weights saturate."""
    result = build("--package", str(mobilefacenet_package), "--out", str(tmp_path / "e"), "--precision", "int8")
    assert result.exit_code == 1
    missing = "onnx_int8_u8" if int8_saturates(instruction_set()) else "onnx_int8"
    assert f"has no {missing} file" in result.output and "mfr-export calibrate" in result.output
    assert not (tmp_path / "e").exists()


def test_a_plain_package_runs_int8_with_the_weights_this_cpu_does_not_saturate(calibrated, mobilefacenet_package):
    """As build-engine chooses (test_the_cpu_kind_chooses_the_int8_weight_scheme): the uint8-weight model on
    x86 without VNNI, the int8-weight one elsewhere; a scheme asked for explicitly is taken as asked."""
    from mfr.runtime.engine_load import model_file_for, package_model_key

    here = "model.int8.u8.onnx" if int8_saturates(instruction_set()) else "model.int8.onnx"
    manifest = load_manifest(calibrated[0])
    assert model_file_for(calibrated[0], manifest, "int8") == (calibrated[0] / here, "int8")
    assert model_file_for(calibrated[0], manifest, "int8", "s8")[0].name == "model.int8.onnx"
    assert model_file_for(calibrated[0], manifest, "int8", "u8")[0].name == "model.int8.u8.onnx"
    assert package_model_key("fp32", "u8") == "onnx" and package_model_key("fp16") == "onnx_fp16"
    assert package_model_key("int8-fp16") is None
    with open_model(calibrated[0], "int8") as engine:
        assert engine.model_file == calibrated[0] / here
    missing = "uint8-weight model, onnx_int8_u8" if int8_saturates(instruction_set()) else "has no int8 model"
    with pytest.raises(ManifestError, match=missing):
        model_file_for(mobilefacenet_package, load_manifest(mobilefacenet_package), "int8")


def test_tensorrt_only_requests_fail_clearly_without_tensorrt(mobilefacenet_package, tmp_path):
    if tensorrt_version() is not None:
        pytest.skip(f"TensorRT {tensorrt_version()} is installed here: these requests would build")
    out = str(tmp_path / "e")
    result = build("--package", str(mobilefacenet_package), "--out", out, "--backend", "tensorrt")
    assert result.exit_code == 1 and "TensorRT is not installed" in result.output
    for args, message in ((["--precision", "fp16"], "fp16 needs TensorRT"), (["--dla-core", "0"], "--dla-core"),
                          (["--version-compatible"], "--version-compatible")):
        result = build("--package", str(mobilefacenet_package), "--out", out, *args)
        assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "e").exists()


def test_an_engine_directory_is_not_a_source_package(fp32_engine, tmp_path):
    result = build("--package", str(fp32_engine), "--out", str(tmp_path / "e"))
    assert result.exit_code == 1 and "is an engine directory" in result.output
    result = CliRunner().invoke(export_cli, ["calibrate", "--model", str(fp32_engine), "--out", str(tmp_path / "c")])
    assert result.exit_code == 1 and "lists no FP32 ONNX model" in result.output
    assert not (tmp_path / "c").exists()


# --- running -----------------------------------------------------------------------------------------

def test_fp32_engine_matches_torch_on_real_faces(fp32_engine, faces):
    torch = pytest.importorskip("torch")
    from mfr.models.checkpoint import load_weights
    from mfr.registry import get_model_entry

    entry = get_model_entry("mobilefacenet")
    model = load_weights(entry.build(), entry.default_weights, entry.name, entry.strip_prefix).eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(faces)).numpy()
    with open_engine(fp32_engine) as engine:
        got = engine.raw_embeddings(faces)  # 40 faces through a profile of at most 16: split into 3 calls
    cosine = (expected * got).sum(1) / np.linalg.norm(expected, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() >= 0.9999


def test_int8_engine_stays_close_to_fp32(fp32_engine, int8_engine, faces):
    with open_engine(fp32_engine) as a, open_engine(int8_engine) as b:
        x, y = a.raw_embeddings(faces), b.raw_embeddings(faces)
    cosine = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    assert int8_cosine_bar() <= cosine.mean() < 1.0 - 1e-6  # close, and really a different (quantized) model
    assert cosine.min() >= int8_cosine_bar() - 0.02


def test_large_batches_are_split_into_calls_that_fit_the_profile(fp32_engine, faces):
    with open_engine(fp32_engine) as engine:
        calls: list[int] = []
        backend_call = engine._infer_once
        engine._infer_once = lambda inputs: calls.append(len(inputs)) or backend_call(inputs)  # type: ignore
        whole = engine.infer(faces)[engine.output_names[0]]
        assert calls == [16, 16, 8]  # profile max 16
        one_by_one = np.concatenate([backend_call(faces[i:i + 1])[engine.output_names[0]] for i in range(40)])
        np.testing.assert_allclose(whole, one_by_one, rtol=1e-4, atol=1e-4)
        with pytest.raises(EngineError, match=r"batch of 0 is outside the engine's profile \[1, 16\]"):
            engine.infer(faces[:0])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 3, 112, 112), np.float64), "must be float32"),
    (np.zeros((2, 112, 112, 3), np.float32), r"must have shape \['batch', 3, 112, 112\]"),
    (np.zeros((3, 112, 112), np.float32), "must have shape"),
    (np.zeros((2, 3, 96, 112), np.float32), "got \\[2, 3, 96, 112\\]"),
])
def test_wrong_input_is_refused_with_what_was_expected(fp32_engine, bad, message):
    with open_engine(fp32_engine) as engine, pytest.raises(EngineError, match=message):
        engine.raw_embeddings(bad)


def test_truncated_engine_file_is_caught_before_the_backend(fp32_engine, tmp_path):
    engine = copy_engine(fp32_engine, tmp_path)
    path = engine / "model.ort.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(EngineError, match="truncated or was replaced"):
        open_engine(engine)


def test_a_package_is_not_an_engine_but_open_model_runs_both(fp32_engine, mobilefacenet_package, faces):
    with pytest.raises(EngineError, match="is a model package, not an engine directory"):
        open_engine(mobilefacenet_package)
    with open_model(mobilefacenet_package) as package, open_model(fp32_engine) as engine:
        np.testing.assert_allclose(package.raw_embeddings(faces[:4]), engine.raw_embeddings(faces[:4]),
                                   rtol=1e-4, atol=1e-4)
    with pytest.raises(EngineError, match="is a fp32 engine"):
        open_model(fp32_engine, precision="int8")


# --- manifest checks ---------------------------------------------------------------------------------

def trt_record(**changes: object) -> EngineRecord:
    record = EngineRecord(backend="tensorrt", backend_version="10.3.0", device="Orin", compute_capability="8.7",
                          providers=[], precision="int8", profile=BatchProfile(1, 8, 32),
                          source_package="/models/mfn-int8", source_file="model.int8.trt.onnx", source_sha256="0" * 64)
    return replace(record, **changes)


ORIN = MachineState(tensorrt="10.3.0", onnxruntime="1.32.0", providers=["CPUExecutionProvider"],
                    gpu=GpuInfo("Orin", "8.7", 61.4))


def test_the_same_machine_has_no_mismatch():
    assert mismatches(trt_record(), ORIN) == []


@pytest.mark.parametrize("machine, expected", [
    (replace(ORIN, tensorrt="10.7.0"), "built with TensorRT 10.3.0; this machine has TensorRT 10.7.0"),
    (replace(ORIN, tensorrt=None), "this machine has no TensorRT"),
    (replace(ORIN, gpu=GpuInfo("NVIDIA H100 80GB HBM3", "9.0", 79.1)),
     "built for GPU Orin (compute capability 8.7); this machine has NVIDIA H100 80GB HBM3 (compute capability 9.0)"),
    (replace(ORIN, gpu=None), "this machine has no usable NVIDIA GPU"),
])
def test_tensorrt_mismatches_name_both_sides(machine, expected):
    assert expected in " | ".join(mismatches(trt_record(), machine))


def test_version_compatible_plans_run_on_later_releases_of_the_same_major():
    record = trt_record(options=EngineOptions(version_compatible=True))
    assert mismatches(record, replace(ORIN, tensorrt="10.8.1")) == []
    assert mismatches(record, replace(ORIN, tensorrt="10.2.0")) != []
    assert mismatches(record, replace(ORIN, tensorrt="11.0.0")) != []


def test_tensorrt_engine_from_another_machine_is_refused_with_the_rebuild_command(fp32_engine, tmp_path):
    engine = copy_engine(fp32_engine, tmp_path)
    edit_record(engine, backend="tensorrt", backend_version="10.3.0", device="Orin", compute_capability="8.7",
                providers=[])
    with pytest.raises(EngineMismatchError) as error:
        open_engine(engine)
    message = str(error.value)
    assert "built with TensorRT 10.3.0; this machine has no TensorRT" in message
    assert "built for GPU Orin (compute capability 8.7)" in message
    record = load_manifest(engine).engine
    assert record is not None and rebuild_command(record, engine) in message
    assert "mfr-export build-engine --package" in message and "--backend tensorrt" in message


def test_onnxruntime_version_mismatch_is_refused_then_rebuilt_on_request(fp32_engine, tmp_path, faces):
    engine = copy_engine(fp32_engine, tmp_path)
    edit_record(engine, backend_version="1.16.3")
    result = CliRunner().invoke(mfr_cli, ["bench", "latency", "--model", str(engine), "--batch", "1", "--rounds", "1"])
    assert result.exit_code == 1
    assert "optimised by ONNX Runtime 1.16.3; this machine has ONNX Runtime" in result.output
    assert "--rebuild-on-mismatch" in result.output
    result = CliRunner().invoke(mfr_cli, ["bench", "latency", "--model", str(engine), "--batch", "1", "--rounds", "1",
                                          "--rebuild-on-mismatch"])
    assert result.exit_code == 0, result.output
    assert "rebuilding" in result.output and "optimised by ONNX Runtime 1.16.3" in result.output
    with open_engine(engine) as rebuilt:
        assert rebuilt.manifest.engine is not None and rebuilt.manifest.engine.backend_version != "1.16.3"
        np.testing.assert_allclose(rebuilt.raw_embeddings(faces[:2]), load_engine_output(fp32_engine, faces[:2]),
                                   rtol=1e-4, atol=1e-4)
    assert not rebuild_if_mismatched(engine, log=lambda _: None)  # it fits now: nothing to do


def test_rebuild_needs_the_unchanged_source(fp32_engine, tmp_path):
    engine = copy_engine(fp32_engine, tmp_path)
    edit_record(engine, backend_version="1.16.3", source_sha256="f" * 64)
    with pytest.raises(EngineMismatchError, match="source .* is missing or changed"):
        rebuild_if_mismatched(engine, log=lambda _: None)


# --- eval and bench on engines -------------------------------------------------------------------------

def test_eval_on_an_engine_reproduces_the_package(fp32_engine, mobilefacenet_package, tmp_path):
    reports = {}
    for name, path in (("package", mobilefacenet_package), ("engine", fp32_engine)):
        out = tmp_path / f"{name}.json"
        result = CliRunner().invoke(mfr_cli, ["eval", "--model", str(path), "--dataset", "lfw", "--folds", "2",
                                              "--bootstrap", "0", "--no-cache", "--json", str(out)])
        assert result.exit_code == 0, result.output
        reports[name] = json.loads(out.read_text())
    assert reports["engine"]["backend"] == "onnxruntime" and reports["engine"]["precision"] == "fp32"
    assert reports["engine"]["accuracy"] == pytest.approx(reports["package"]["accuracy"], abs=1 / 600)
    assert reports["engine"]["accuracy"] >= 0.97


def test_eval_refuses_both_precisions_on_one_engine(fp32_engine):
    result = CliRunner().invoke(mfr_cli, ["eval", "--model", str(fp32_engine), "--dataset", "lfw",
                                          "--precision", "int8"])
    assert result.exit_code == 1 and "is a fp32 engine" in result.output


def test_bench_latency_measures_engines_interleaved(fp32_engine, int8_engine, tmp_path):
    out = tmp_path / "latency.json"
    result = CliRunner().invoke(mfr_cli, ["bench", "latency", "--model", str(fp32_engine), "--model",
                                          str(int8_engine), "--batch", "1,20", "--rounds", "3", "--block", "2",
                                          "--warmup", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| engine | model | batch | p50 ms | p95 ms | p99 ms | faces/s |" in result.output
    data = json.loads(out.read_text())
    assert len(data["results"]) == 4 and {r["batch"] for r in data["results"]} == {1, 20}
    for r in data["results"]:
        assert r["rounds"] == 3 and 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
    split = [r for r in data["results"] if r["engine"] == str(fp32_engine) and r["batch"] == 20]
    assert split[0]["calls_per_batch"] == 2  # profile max 16
    assert set(data["ratios"]) == {str(int8_engine)} and set(data["ratios"][str(int8_engine)]) == {"1", "20"}
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["onnxruntime"]
    assert f"cores, {data['machine']['instruction_set']})" in result.output  # every CPU figure names it


def test_bench_latency_refuses_a_plain_package(mobilefacenet_package):
    result = CliRunner().invoke(mfr_cli, ["bench", "latency", "--model", str(mobilefacenet_package)])
    assert result.exit_code == 1 and "mfr-export build-engine" in result.output


def test_info_shows_the_build_record(fp32_engine):
    result = CliRunner().invoke(mfr_cli, ["info", str(fp32_engine)])
    assert result.exit_code == 0 and "engine    fp32 onnxruntime" in result.output and "batch 1/16/16" in result.output


def test_a_detector_engine_defaults_to_one_frame_up_to_640_and_is_checked_on_real_photos(retinaface_package,
                                                                                         tmp_path):
    out = tmp_path / "det"
    result = build("--package", str(retinaface_package), "--out", str(out), "--backend", "onnxruntime")
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    record = manifest.engine
    assert record is not None and record.profile == BatchProfile(1, 1, 1)  # what the detector is fed
    assert record.options.spatial == [[32, 32], [360, 640], [640, 640]]
    # the printed and recorded I/O memory: one 3x640x640 float input, and per prior 4 box deltas, 1 face score
    # and 10 landmark deltas (2 anchors per cell at strides 8, 16, 32 on a 640x640 input)
    priors = sum(2 * (640 // step) ** 2 for step in (8, 16, 32))
    assert record.io_buffer_bytes == 3 * 640 * 640 * 4 + priors * (4 + 1 + 10) * 4
    assert "I/O buffers at the largest shape (batch 1, 640x640): input 4.7 MiB" in result.output
    parity = manifest.stages.engine_parity
    assert parity is not None and "demo photos" in parity.checked
    assert parity.min_cosine is not None and parity.min_cosine >= 0.9999


def test_max_side_is_for_detectors_only(mobilefacenet_package, tmp_path):
    result = build("--package", str(mobilefacenet_package), "--out", str(tmp_path / "e"), "--max-side", "320")
    assert result.exit_code == 1 and "--max-side applies to detector packages" in result.output
    assert not (tmp_path / "e").exists()


def test_the_rebuild_command_replays_every_recorded_build_option():
    from mfr.cli.export_cli import build_engine_command

    record = trt_record(options=EngineOptions(workspace_mib=2048, dla_core=1, version_compatible=True,
                                              int8_source="calibration-cache", timing_cache="/cache/t.bin",
                                              int8_float="fp16",
                                              spatial=[[32, 32], [270, 480], [480, 480]]))
    args = rebuild_command(record, Path("/engines/e")).split()[2:]  # after "mfr-export build-engine"
    params = build_engine_command.make_context("build-engine", args).params
    assert (params["min_batch"], params["opt_batch"], params["max_batch"]) == (1, 8, 32)
    assert (params["package"], params["out"], params["force"]) == (Path("/models/mfn-int8"), Path("/engines/e"), True)
    assert (params["precision"], params["backend"], params["max_side"]) == ("int8", "tensorrt", 480)
    assert (params["workspace_mib"], params["timing_cache"], params["int8_source"]) == (
        2048, Path("/cache/t.bin"), "calibration-cache")
    assert (params["dla_core"], params["version_compatible"], params["int8_float"]) == (1, True, "fp16")


@pytest.mark.parametrize("args, message", [
    (["--precision", "fp16"], "--dla-core needs one fixed input shape"),  # default profile 1/32/128
    (["--precision", "fp32", "--min-batch", "8", "--max-batch", "8"], "--dla-core runs FP16 or INT8 only, not fp32"),
])
def test_dla_builds_need_a_static_shape_and_fp16_or_int8(mobilefacenet_package, tmp_path, args, message):
    result = build("--package", str(mobilefacenet_package), "--out", str(tmp_path / "e"), "--dla-core", "0",
                   "--backend", "tensorrt", *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "e").exists()


def test_closing_an_engine_twice_is_harmless(fp32_engine, faces):
    engine = open_engine(fp32_engine)
    assert engine.raw_embeddings(faces[:1]).shape[0] == 1
    engine.close()
    engine.close()


def test_int8_float_fp16_is_for_tensorrt_int8_from_the_qdq_model(calibrated, tmp_path):
    for args, message in ((["--precision", "fp32", "--int8-float", "fp16"], "--int8-float fp16 applies to"),
                          (["--precision", "int8", "--int8-float", "fp16", "--backend", "onnxruntime"],
                           "--int8-float fp16 needs the TensorRT backend")):
        result = build("--package", str(calibrated[0]), "--out", str(tmp_path / "e"), *args)
        assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "e").exists()
