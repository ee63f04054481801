"""``mfr-export triton``: a model repository for a full Triton install, checked against Triton's own schema
(``model_config.proto`` as tritonclient ships it, parsed strictly) and read by a real ``tritonserver``.

The CPU build of Triton the tests use has only the Python backend, so the ONNX Runtime platform's model is
not run: the server is shown to accept the configuration and to stop only at the missing backend.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mfr.atomic import sha256_file
from mfr.cli.export_cli import cli as export_cli
from mfr.errors import EngineError
from mfr.manifest import Manifest, load_manifest

pytest.importorskip("tritonclient.grpc")


def export(*args: object) -> object:
    return CliRunner().invoke(export_cli, ["triton", *[str(a) for a in args]])


def read_config(folder: Path) -> object:
    from mfr.serving.model_config import parse_config_text

    return parse_config_text((folder / "config.pbtxt").read_text(), str(folder))


@pytest.fixture(scope="module")
def ort_engine(mobilefacenet_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("engine") / "fp32"
    result = CliRunner().invoke(export_cli, ["build-engine", "--package", str(mobilefacenet_package), "--out",
                                             str(out), "--backend", "onnxruntime", "--max-batch", "16"])
    assert result.exit_code == 0, result.output
    return out


def test_a_package_becomes_a_repository_that_tritons_schema_accepts(mobilefacenet_package, tmp_path):
    from tritonclient.grpc import model_config_pb2 as pb

    repo = tmp_path / "models"
    result = export("--package", mobilefacenet_package, "--out", repo, "--max-batch", "24", "--max-queue-delay-us",
                    "500", "--instances", "2", "--json")
    assert result.exit_code == 0, result.output
    config = read_config(repo / "mobilefacenet")
    manifest = load_manifest(mobilefacenet_package)
    assert (config.name, config.platform, config.max_batch_size) == ("mobilefacenet", "onnxruntime_onnx", 24)
    assert [(t.name, list(t.dims), t.data_type) for t in config.input] == [("input", [3, 112, 112], pb.TYPE_FP32)]
    assert [(t.name, list(t.dims)) for t in config.output] == [("embedding", [128])]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.count, g.kind) for g in config.instance_group] == [(2, pb.ModelInstanceGroup.KIND_GPU)]
    carried = Manifest.from_dict(json.loads(config.parameters["mfr_manifest"].string_value))
    assert carried.spec == manifest.spec and carried.sha256 == manifest.sha256
    assert config.parameters["mfr_precision"].string_value == "fp32"
    assert sha256_file(repo / "mobilefacenet" / "1" / "model.onnx") == manifest.sha256["onnx"]
    assert sorted(p.name for p in repo.iterdir()) == ["mobilefacenet"]  # no staging folder left


def test_an_int8_package_and_an_engine_export_the_model_they_hold(calibrated, ort_engine, tmp_path):
    """A package's INT8 model with the weights the serving CPU needs: this CPU's for --kind cpu (uint8 weights
    where int8 ones saturate), int8 weights for a GPU, or as --int8-weights says."""
    from mfr.runtime.machine import instruction_set, int8_saturates

    repo = tmp_path / "models"
    manifest = load_manifest(calibrated[0])
    this_cpu = "onnx_int8_u8" if int8_saturates(instruction_set()) else "onnx_int8"
    for name, options, key in (("faces-int8", ["--kind", "cpu"], this_cpu), ("faces-gpu", [], "onnx_int8"),
                               ("faces-u8", ["--kind", "cpu", "--int8-weights", "u8"], "onnx_int8_u8")):
        result = export("--package", calibrated[0], "--precision", "int8", "--name", name, "--out", repo, *options)
        assert result.exit_code == 0, result.output
        assert sha256_file(repo / name / "1" / "model.onnx") == manifest.sha256[key], name
        parameters = read_config(repo / name).parameters
        assert parameters["mfr_precision"].string_value == "int8"
        assert parameters["mfr_source_sha256"].string_value == manifest.sha256[key]  # what clients key embeddings by
        assert manifest.files[key] in result.output  # says which model it took

    result = export("--engine", ort_engine, "--name", "faces-engine", "--out", repo, "--max-batch", "16")
    assert result.exit_code == 0, result.output
    engine_manifest = load_manifest(ort_engine)
    assert sha256_file(repo / "faces-engine" / "1" / "model.onnx") == engine_manifest.sha256["engine"]
    assert engine_manifest.engine is not None
    assert (read_config(repo / "faces-engine").parameters["mfr_source_sha256"].string_value
            == engine_manifest.engine.source_sha256)
    result = export("--engine", ort_engine, "--name", "faces-engine", "--out", repo, "--max-batch", "64")
    assert result.exit_code == 2 and "at most 16" in result.output  # the engine's profile bounds the batch


def test_bad_input_is_refused_and_nothing_is_written(mobilefacenet_package, tmp_path):
    repo = tmp_path / "models"
    result = export("--package", tmp_path / "nowhere", "--out", repo)
    assert result.exit_code == 1 and "manifest.json" in result.output and not repo.exists()
    result = export("--package", mobilefacenet_package, "--out", repo, "--precision", "int8")
    assert result.exit_code == 1 and "no int8 model" in result.output and not repo.exists()
    result = export("--package", mobilefacenet_package, "--out", repo, "--name", "bad/name")
    assert result.exit_code == 1 and "model name" in result.output and not repo.exists()
    assert export("--package", mobilefacenet_package, "--out", repo).exit_code == 0
    before = (repo / "mobilefacenet" / "config.pbtxt").read_text()
    result = export("--package", mobilefacenet_package, "--out", repo, "--max-batch", "8")
    assert result.exit_code == 1 and "--force" in result.output
    assert (repo / "mobilefacenet" / "config.pbtxt").read_text() == before
    assert export("--package", mobilefacenet_package, "--out", repo, "--max-batch", "8", "--force").exit_code == 0
    assert read_config(repo / "mobilefacenet").max_batch_size == 8


def test_the_schema_check_refuses_what_triton_does_not_know(tmp_path):
    from mfr.serving.model_config import parse_config_text

    with pytest.raises(EngineError, match="not a valid Triton model configuration"):
        parse_config_text('name: "x"\nmax_batch_size: 8\nbatching_window_us: 3\n', "x/config.pbtxt")


def test_a_real_tritonserver_reads_the_configuration(mobilefacenet_package, tmp_path):
    from mfr.serving.server import TritonInstall

    try:
        install = TritonInstall.locate()
    except EngineError as exc:
        pytest.skip(f"no Triton server here: {exc}")
    repo = tmp_path / "models"
    assert export("--package", mobilefacenet_package, "--out", repo, "--kind", "cpu").exit_code == 0
    broken = repo / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "config.pbtxt").write_text('name: "broken"\nplatform: "onnxruntime_onnx"\nmax_batch_sizes: 8\n')
    run = subprocess.run([str(install.binary), f"--model-repository={repo}",
                          f"--backend-directory={install.python_backend.parent}", "--allow-http=false",
                          "--allow-grpc=false", "--allow-metrics=false", "--exit-on-error=true"],
                         capture_output=True, text=True, timeout=60)
    log = run.stdout + run.stderr
    assert run.returncode != 0  # this build has no ONNX Runtime backend: the model cannot load
    ours = [line for line in log.splitlines() if "failed to load 'mobilefacenet' version" in line]
    assert ours and all("unable to find backend library for backend 'onnxruntime'" in line for line in ours), log
    assert "Poll failed for model directory 'mobilefacenet'" not in log  # its configuration was read
    assert "Poll failed for model directory 'broken'" in log and "max_batch_sizes" in log  # the parser is strict
