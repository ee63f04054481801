"""Which quantized layers cost the most accuracy: per-layer sensitivity on held-out inputs.

Each candidate layer is quantized alone (everything else float) and scored by how far the model's outputs
on held-out inputs move from FP32 (a recogniser: 1 - mean embedding cosine; a detector: 1 - mean cosine of
its raw outputs). This only ranks the candidates: layers interact (keeping
one layer float re-places its neighbours' Q/DQ pairs; measured here, keeping the top-ranked layer alone
in float made MobileFaceNet's INT8 embeddings worse), so the fallback accepts a layer only if keeping
it float actually helps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from mfr.calibration.ort_qdq import quantize_ort, quantized_node_names
from mfr.progress import Progress, no_progress
from mfr.runtime.engine_ort import exact_session_options, onnxruntime_session
from mfr.runtime.similarity import l2_normalize


def run_outputs(model: onnx.ModelProto, inputs: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Every output of ``model`` on ``inputs`` by name, INT8 evaluated exactly (the same on every CPU)."""
    session = onnxruntime_session(model.SerializeToString(), exact_session_options())
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    parts = [session.run(names, {name: inputs[i:i + batch_size]}) for i in range(0, len(inputs), batch_size)]
    return {output: np.concatenate([part[k] for part in parts]) for k, output in enumerate(names)}


def run_model(model: onnx.ModelProto, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """L2-normalised first output of ``model`` (a recogniser's embeddings), INT8 evaluated exactly."""
    return l2_normalize(next(iter(run_outputs(model, inputs, batch_size).values())))


def embedding_distance(heldout: np.ndarray, reference: np.ndarray) -> Callable[[onnx.ModelProto], float]:
    """1 - mean cosine of a model's embeddings of ``heldout`` to the FP32 ``reference`` embeddings."""
    return lambda model: float(1.0 - (run_model(model, heldout) * reference).sum(axis=1).mean())


def layer_sensitivity(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]],
                      distance: Callable[[onnx.ModelProto], float], progress: Progress = no_progress
                      ) -> dict[str, float]:
    """Node name -> ``distance`` of the model with only this node INT8, most sensitive first."""
    nodes = quantized_node_names(model)
    scores = {}
    for node in progress(nodes, len(nodes), "per-layer sensitivity"):
        scores[node] = distance(quantize_ort(model, ranges, only=[node]))
    return dict(sorted(scores.items(), key=lambda item: -item[1]))
