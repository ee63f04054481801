"""The TensorRT Q/DQ model places its quantization where TensorRT Model Optimizer does.

``nvidia-modelopt``'s ONNX PTQ (run on the CPU, in a separate interpreter because TensorRT's type stubs
make ``import tensorrt`` succeed without TensorRT) quantizes the same FP32 ONNX with the same real faces;
the sets of quantized activation tensors and weighted layers must be the same, except for the
differences ``mfr.calibration.trt_qdq.KNOWN_DIFFERENCES`` lists, which the test derives from the graph
itself. MobileFaceNet (depthwise, residual Adds after a projection Conv), iResNet-18 and -50 (PReLU,
BatchNormalization after the residual Add, downsample branches; random weights: placement does not
depend on them).

That holds for the locked ModelOpt release (constraints/ci.txt). Another release may move its placement:
there the two must still agree on at least 90 % of the quantized tensors and of the quantized layers, and
every difference beyond the known ones is reported (tests/locked_releases.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from mfr.calibration.ranges import collect_stats, compute_ranges
from mfr.calibration.trt_qdq import KNOWN_DIFFERENCES, write_trt_int8
from mfr.export.real_inputs import sample_faces
from mfr.registry import get_model_entry
from tests.locked_releases import library_release

pytest.importorskip("modelopt", reason="needs nvidia-modelopt (the dev extra)")
MODELOPT_RELEASE = library_release("nvidia-modelopt")
# The least share of quantized tensors (and of quantized layers) two placements must share with a ModelOpt
# release other than the locked one: their intersection over their union.
OTHER_RELEASE_AGREEMENT = 0.9

MODELOPT = """
import sys
sys.modules["tensorrt"] = None  # tensorrt-stubs is not TensorRT: ModelOpt must take its no-TensorRT path
import numpy as np
from modelopt.onnx.quantization import quantize
quantize(sys.argv[1], quantize_mode="int8", calibration_data=np.load(sys.argv[2]), calibration_method="max",
         output_path=sys.argv[3], calibration_eps=["cpu"], log_level="ERROR", high_precision_dtype="fp32")
"""


def placement(path: Path) -> tuple[set[str], set[str]]:
    """(activation tensors behind a QuantizeLinear, Conv/Gemm/MatMul nodes whose weight is dequantized)."""
    model = onnx.load(str(path))
    constants = {init.name for init in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    activations = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"
                   and n.input[0] not in constants}
    weighted = {n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1
                and getattr(producer.get(n.input[1]), "op_type", None) == "DequantizeLinear"}
    return activations, weighted


def expected_differences(fp32: Path) -> tuple[set[str], set[str], set[str]]:
    """From the FP32 graph: (activations only mfr quantizes, only ModelOpt quantizes, layers whose weights only
    mfr quantizes), one entry per ``KNOWN_DIFFERENCES`` case found."""
    model = onnx.load(str(fp32))
    producer = {out: node for node in model.graph.node for out in node.output}
    outputs = {o.name for o in model.graph.output}
    # a Gemm/MatMul producing the (batch, D) embedding is a GEMV at batch 1
    gemv = [n for n in model.graph.node if n.op_type in ("Gemm", "MatMul") and n.output[0] in outputs]
    # a BatchNormalization whose input no Conv produced (no convolution absorbs it)
    lone_bn = [n for n in model.graph.node if n.op_type == "BatchNormalization"
               and getattr(producer.get(n.input[0]), "op_type", None) != "Conv"
               and not any(c.op_type == "Conv" for c in model.graph.node if n.output[0] in c.input)]
    assert set(KNOWN_DIFFERENCES) == {"gemv_at_batch_1", "lone_batchnorm"}
    return {n.input[0] for n in gemv}, {n.input[0] for n in lone_bn}, {n.name for n in gemv}


@pytest.fixture(scope="module")
def fp32_models(mobilefacenet_package, tmp_path_factory) -> dict[str, Path]:
    import torch

    from mfr.export.onnx_export import torch_to_onnx
    from mfr.models.iresnet import iresnet

    folder = tmp_path_factory.mktemp("placement")
    models = {"mobilefacenet": mobilefacenet_package / "model.onnx"}
    for depth in (18, 50):
        torch.manual_seed(depth)
        path = folder / f"iresnet{depth}.onnx"
        torch_to_onnx(iresnet(depth), get_model_entry(f"iresnet{depth}"), path)
        models[f"iresnet{depth}"] = path
    return models


@pytest.mark.parametrize("name", ["mobilefacenet", "iresnet18", "iresnet50"])
def test_qdq_placement_matches_modelopt(fp32_models, tmp_path, name):
    fp32 = fp32_models[name]
    faces = sample_faces(16, get_model_entry(name).spec)
    np.save(tmp_path / "faces.npy", faces)
    reference = tmp_path / "modelopt.onnx"
    done = subprocess.run([sys.executable, "-c", MODELOPT, str(fp32), str(tmp_path / "faces.npy"), str(reference)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ours = tmp_path / "ours.onnx"
    write_trt_int8(fp32, compute_ranges(collect_stats(fp32, faces), "minmax"), ours)

    (our_acts, our_weights), (mo_acts, mo_weights) = placement(ours), placement(reference)
    only_ours, only_modelopt, weights_only_ours = expected_differences(fp32)
    assert len(mo_acts) > 20 and len(mo_weights) > 15  # ModelOpt did quantize the network
    if not MODELOPT_RELEASE.is_locked:
        compare_with_other_release(name, (our_acts, mo_acts, only_ours, only_modelopt),
                                   (our_weights, mo_weights, weights_only_ours))
        return
    assert our_acts - mo_acts == only_ours
    assert mo_acts - our_acts == only_modelopt
    assert our_weights - mo_weights == weights_only_ours and mo_weights <= our_weights
    if name == "mobilefacenet":
        assert not (only_ours or only_modelopt or weights_only_ours)  # the same placement, exactly


def compare_with_other_release(name: str, activations: tuple[set[str], set[str], set[str], set[str]],
                               weights: tuple[set[str], set[str], set[str]]) -> None:
    """Against a ModelOpt release that is not the locked one: most of the placement shared, the rest reported."""
    our_acts, mo_acts, only_ours, only_modelopt = activations
    our_weights, mo_weights, weights_only_ours = weights
    shares = {what: len(a & b) / len(a | b) for what, a, b in (("activations", our_acts, mo_acts),
                                                                 ("layers", our_weights, mo_weights))}
    assert min(shares.values()) >= OTHER_RELEASE_AGREEMENT, (name, shares, str(MODELOPT_RELEASE))
    unexpected = sorted((our_acts - mo_acts - only_ours) | (mo_acts - our_acts - only_modelopt)
                        | ((our_weights ^ mo_weights) - weights_only_ours))
    MODELOPT_RELEASE.report(f"{name}: placements share {shares['activations']:.0%} of the quantized tensors and "
                            f"{shares['layers']:.0%} of the quantized layers; beyond the known differences: "
                            f"{unexpected or 'none'}")


@pytest.mark.parametrize("op, attributes, shape, axis", [("Gemm", {"transB": 1}, (6, 8), 0),
                                                         ("Gemm", {}, (8, 6), 1), ("MatMul", {}, (8, 6), 1)])
def test_gemm_and_matmul_get_per_channel_int8_weights(tmp_path, op, attributes, shape, axis):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = (rng.standard_normal(shape) * np.geomspace(0.01, 10, 6).reshape((-1, 1) if axis == 0 else (1, -1))
               ).astype(np.float32)
    graph = helper.make_graph([helper.make_node(op, ["x", "w"], ["y"], name="fc", **attributes)], "fc",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6])],
                              [numpy_helper.from_array(weights, "w")])
    fp32, out = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))
    write_trt_int8(fp32, {"x": (-1.0, 1.0)}, out)
    model = onnx.load(str(out))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    [dq] = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert [a.i for a in dq.attribute if a.name == "axis"] == [axis]
    scales = inits[dq.input[1]]
    assert scales.shape == (6,)  # one scale per output channel, whose magnitudes span 1000x
    restored = inits[dq.input[0]].astype(np.float32) * scales.reshape((-1, 1) if axis == 0 else (1, -1))
    per_channel_error = np.abs(restored - weights).max(axis=1 - axis)
    assert (per_channel_error <= 0.5 * scales + 1e-7).all()  # each channel within half of its own step
