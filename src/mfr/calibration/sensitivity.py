"""Which quantized layers cost the most accuracy: per-layer sensitivity on held-out faces.

Each candidate layer is quantized alone (everything else float) and scored by how far the embeddings of
held-out faces move from FP32 (1 - mean cosine). This only ranks the candidates: layers interact (keeping
one layer float re-places its neighbours' Q/DQ pairs; measured here, keeping the top-ranked layer alone
in float made MobileFaceNet's INT8 embeddings worse), so the fallback accepts a layer only if keeping
it float actually helps.
"""

from __future__ import annotations

import numpy as np
import onnx

from mfr.calibration.ort_qdq import quantize_ort, quantized_node_names
from mfr.progress import Progress, no_progress
from mfr.runtime.engine_ort import exact_session_options, onnxruntime_session
from mfr.runtime.similarity import l2_normalize


def run_model(model: onnx.ModelProto, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """L2-normalised outputs of ``model``, INT8 evaluated exactly (the same on every CPU)."""
    session = onnxruntime_session(model.SerializeToString(), exact_session_options())
    name = session.get_inputs()[0].name
    out = np.concatenate([session.run(None, {name: inputs[i:i + batch_size]})[0]
                          for i in range(0, len(inputs), batch_size)])
    return l2_normalize(out)


def layer_sensitivity(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], heldout: np.ndarray,
                      progress: Progress = no_progress
                      ) -> dict[str, float]:
    """Node name -> 1 - mean cosine(FP32, only-this-node-INT8) over ``heldout``, most sensitive first."""
    reference = run_model(model, heldout)
    nodes = quantized_node_names(model)
    scores = {}
    for node in progress(nodes, len(nodes), "per-layer sensitivity"):
        embeddings = run_model(quantize_ort(model, ranges, only=[node]), heldout)
        scores[node] = float(1.0 - (embeddings * reference).sum(axis=1).mean())
    return dict(sorted(scores.items(), key=lambda item: -item[1]))
