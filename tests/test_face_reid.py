"""face-reidentification-retail-0095: its OpenVINO IR read strictly into the PyTorch module written from it, the
module checked against the IR run by OpenVINO's own runtime, and the registry entry every stage reads."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mfr.errors import CheckpointError
from mfr.registry import MODELS

torch = pytest.importorskip("torch")

from mfr.models.checkpoint import load_weights  # noqa: E402
from mfr.models.face_reid import FaceReidNet  # noqa: E402

ENTRY = MODELS["face-reid-0095"]
IR = ENTRY.default_weights
assert IR is not None


def test_the_registry_ships_it_with_its_licence_card_and_spec():
    assert IR.is_file() and IR.with_suffix(".bin").is_file()
    for name in ("LICENSE", "README.md", "model.yml"):
        assert (IR.parent / name).is_file()
    assert "Apache License" in (IR.parent / "LICENSE").read_text()
    spec = ENTRY.spec
    assert (spec.input_size, spec.color_order, spec.scale, spec.embedding_dim) == ((128, 128), "BGR", 1.0, 256)
    assert spec.mean == (0.0, 0.0, 0.0) and spec.std == (1.0, 1.0, 1.0)
    # the model card's five points, in [0, 1], scaled to the 128-pixel crop
    card = (IR.parent / "README.md").read_text()
    assert "0.31556875000000000, 0.4615741071428571" in card
    assert spec.template is not None and spec.template[0] == pytest.approx((0.31556875 * 128, 0.4615741071428571 * 128))
    from mfr.cli.main import cli

    listed = CliRunner().invoke(cli, ["models"])
    assert listed.exit_code == 0 and "face-reid-0095" in listed.output


def raw_weights(xml: Path) -> list[tuple[str, np.ndarray]]:
    """Every Const of the IR as its bytes say (FP16 -> FP32), in file order: read here, not by the loader."""
    root = ET.parse(xml).getroot()
    blob = xml.with_suffix(".bin").read_bytes()
    found = []
    for layer in root.iterfind("layers/layer"):
        if layer.get("type") == "Const":
            data = layer.find("data")
            assert data is not None and data.get("element_type") == "f16"
            offset, size = int(data.get("offset", "0")), int(data.get("size", "0"))
            found.append((layer.get("name", ""), np.frombuffer(blob[offset:offset + size], "<f2").astype(np.float32)))
    return found


def test_every_ir_weight_fills_one_module_entry_and_none_is_left():
    model = load_weights(FaceReidNet(), IR, ENTRY.name)
    state = model.state_dict()
    raw = raw_weights(IR)
    assert len(state) == len(raw) == 209
    assert sum(t.numel() for t in state.values()) == sum(v.size for _, v in raw) == 1_106_814
    # each IR weight lies in exactly one entry, value for value
    remaining = {key: tensor.numpy().ravel() for key, tensor in state.items()}
    for name, values in raw:
        match = [key for key, tensor in remaining.items()
                 if tensor.size == values.size and np.array_equal(tensor, values)]
        assert match, f"IR weight {name} is in no module entry"
        remaining.pop(match[0])
    assert not remaining
    assert model.stem.weight.shape == (64, 3, 3, 3) and model.global_depthwise.weight.shape == (512, 1, 8, 8)


def test_a_truncated_bin_is_refused_naming_the_file_and_nothing_is_written(tmp_path):
    from mfr.cli.export_cli import cli

    shutil.copy(IR, tmp_path / "net.xml")
    (tmp_path / "net.bin").write_bytes(IR.with_suffix(".bin").read_bytes()[:1_000_000])
    result = CliRunner().invoke(cli, ["onnx", "--model", ENTRY.name, "--weights", str(tmp_path / "net.xml"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'net.bin'} is truncated" in result.output and "the file has 1000000" in result.output
    assert not (tmp_path / "out").exists()
    (tmp_path / "net.bin").unlink()
    with pytest.raises(CheckpointError, match="net.bin"):
        load_weights(FaceReidNet(), tmp_path / "net.xml", ENTRY.name)


ONE_CONV_IR = """<?xml version="1.0"?>
<net name="one-conv" version="11">
  <layers>
    <layer id="0" name="x" type="Parameter" version="opset1"><data shape="1,3,8,8" element_type="f32"/>
      <output><port id="0" precision="FP32"/></output></layer>
    <layer id="1" name="w" type="Const" version="opset1">
      <data element_type="f32" shape="4, 3, 1, 1" offset="0" size="48"/>
      <output><port id="0" precision="FP32"/></output></layer>
    <layer id="2" name="conv" type="Convolution" version="opset1">
      <data strides="1, 1" dilations="1, 1" pads_begin="0, 0" pads_end="0, 0" auto_pad="explicit"/>
      <input><port id="0"/><port id="1"/></input><output><port id="2" precision="FP32"/></output></layer>
    <layer id="3" name="y" type="Result" version="opset1"><input><port id="0"/></input></layer>
  </layers>
  <edges>
    <edge from-layer="0" from-port="0" to-layer="2" to-port="0"/>
    <edge from-layer="1" from-port="0" to-layer="2" to-port="1"/>
    <edge from-layer="2" from-port="2" to-layer="3" to-port="0"/>
  </edges>
</net>
"""


def test_an_ir_of_another_network_or_no_ir_is_refused(tmp_path):
    other = tmp_path / "other.xml"
    other.write_text(ONE_CONV_IR)
    other.with_suffix(".bin").write_bytes(np.ones(12, np.float32).tobytes())
    with pytest.raises(CheckpointError, match=r"other.xml into FaceReidNet: the IR holds 1 weights, the module "
                                              r"209 entries: not the network"):
        load_weights(FaceReidNet(), other, ENTRY.name)
    # the same number of weights, one with another shape: named, with the entry it was meant for
    text = IR.read_text().replace('shape="64, 3, 3, 3"', 'shape="64, 3, 9, 1"', 1)
    assert text != IR.read_text()
    (tmp_path / "moved.xml").write_text(text)
    shutil.copy(IR.with_suffix(".bin"), tmp_path / "moved.bin")
    with pytest.raises(CheckpointError, match=r"for stem.weight \(shape \(64, 3, 3, 3\)\): the shapes differ"):
        load_weights(FaceReidNet(), tmp_path / "moved.xml", ENTRY.name)
    (tmp_path / "plain.xml").write_text("<config><value>1</value></config>")
    (tmp_path / "plain.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="plain.xml is not an OpenVINO IR"):
        load_weights(FaceReidNet(), tmp_path / "plain.xml", ENTRY.name)


def aligned_faces(count: int) -> np.ndarray:
    """Real LFW faces warped to the model's template, as uint8 BGR (N, 128, 128, 3)."""
    from mfr.data.lfw import sample_images
    from mfr.runtime.image_io import read_image_bgr
    from mfr.runtime.preprocess import crop_from_aligned

    return np.stack([crop_from_aligned(read_image_bgr(p), ENTRY.spec) for p in sample_images(count)])


def test_the_module_computes_what_openvino_computes_from_the_ir():
    """OpenVINO's own runtime (CPU plugin, FP32 inference precision) runs the IR; the module must give the same
    embeddings on real aligned faces."""
    ov = pytest.importorskip("openvino", reason="needs the openvino package (the dev extra)")
    faces = aligned_faces(24)
    batch = faces.transpose(0, 3, 1, 2).astype(np.float32)  # BGR 0..255, as the IR takes it
    compiled = ov.Core().compile_model(str(IR), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    reference = np.concatenate([compiled(batch[i:i + 1])[0].reshape(1, -1) for i in range(len(batch))])
    with torch.no_grad():
        ours = load_weights(FaceReidNet(), IR, ENTRY.name)(torch.from_numpy(batch)).numpy()
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert reference.shape == (24, 256) and cosine.min() >= 0.9999, cosine.min()


def test_the_exported_package_records_both_ir_files_and_its_parity(face_reid_package):
    from mfr.atomic import sha256_file

    manifest = json.loads((face_reid_package / "manifest.json").read_text())
    assert manifest["sha256"]["weights"] == sha256_file(IR)
    assert manifest["sha256"]["weights_bin"] == sha256_file(IR.with_suffix(".bin"))
    assert manifest["parity"]["min_cosine"] >= 0.9999
    assert manifest["outputs"] == [{"name": "embedding", "shape": ["batch", 256], "dtype": "float32"}]
    assert manifest["spec"]["input_size"] == [128, 128] and manifest["spec"]["color_order"] == "BGR"


def test_every_layer_of_the_exported_graph_has_an_int8_kernel_in_onnx_runtime(face_reid_package):
    """Each op of the exported graph is one the ONNX Runtime INT8 model quantizes (so it runs on INT8 data,
    channels-last, with no float island) or moves data only (the final Reshape); the input scaling (a Mul by
    a constant) is the one float op. A squeeze-excitation average written as ``mean`` would export a
    ReduceMean, which has no such kernel."""
    import onnx

    from mfr.calibration.ort_qdq import OP_TYPES, float_nodes

    model = onnx.load(str(face_reid_package / "model.onnx"))
    ops = {node.op_type for node in model.graph.node}
    assert ops - set(OP_TYPES) == {"Reshape"}, ops
    assert [node.op_type for node in model.graph.node if node.name in float_nodes(model, [])] == ["Mul"]


def test_an_imported_ir_runs_on_openvino_behind_the_engine_interface(face_reid_package, tmp_path):
    """mfr-export import-ir: the shipped IR as an engine directory, opened like any engine, equal to the
    package's FP32 model; its weights file checked by hash; a machine without OpenVINO told so."""
    pytest.importorskip("openvino", reason="needs the openvino package (the dev extra)")
    from dataclasses import replace

    from mfr.cli.export_cli import cli
    from mfr.errors import EngineError
    from mfr.manifest import load_manifest
    from mfr.runtime.engine_backends import mismatches
    from mfr.runtime.engine_check import MachineState
    from mfr.runtime.engine_load import open_model

    out = tmp_path / "ov"
    result = CliRunner().invoke(cli, ["import-ir", "--package", str(face_reid_package), "--ir", str(IR),
                                      "--out", str(out), "--max-batch", "16"])
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    record = manifest.engine
    assert record is not None and (record.backend, record.precision, record.profile.max) == ("openvino", "fp32", 16)
    parity = manifest.stages.engine_parity
    assert parity is not None and parity.min_cosine is not None and parity.min_cosine >= 0.9999
    faces = aligned_faces(20).transpose(0, 3, 1, 2).astype(np.float32)
    with open_model(out) as engine, open_model(face_reid_package) as reference:
        assert engine.backend == "openvino"
        got, expected = engine.raw_embeddings(faces), reference.raw_embeddings(faces)  # 20 > the profile's 16
    cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert got.shape == (20, 256) and cosine.min() >= 0.9999
    assert any("this machine has no OpenVINO" in m for m in mismatches(record, replace(MachineState.current(),
                                                                                        openvino=None)))
    (out / "model.bin").write_bytes((out / "model.bin").read_bytes()[:-8])
    with pytest.raises(EngineError, match="model.bin: sha256 differs"):
        open_model(out)
