"""FP32 vs INT8 of one package on one dataset: the accuracy drop and how far the embeddings move."""

from __future__ import annotations

from typing import Any

import numpy as np

from mfr.benchmarks.verification import EvalReport


def compare_precisions(fp32: EvalReport, int8: EvalReport) -> dict[str, Any]:
    drop = {}
    for name, a in fp32.protocols.items():
        b = int8.protocols[name]
        drop[name] = {
            "accuracy_pp": round(100 * (a.accuracy - b.accuracy), 4),
            "eer_rise_pp": round(100 * (b.eer - a.eer), 4),
            "tar_at_far_1e-3_pp": round(100 * (a.tar_at_far["1e-3"] - b.tar_at_far["1e-3"]), 4),
        }
    cosines = np.concatenate([(fp32.embeddings[k] * int8.embeddings[k]).sum(axis=1) for k in fp32.embeddings])
    return {
        "fp32": fp32.to_dict(),
        "int8": int8.to_dict(),
        "drop": drop,
        "embedding_cosine": {"mean": float(cosines.mean()), "min": float(cosines.min()),
                             "p1": float(np.percentile(cosines, 1)), "faces": int(len(cosines))},
    }


def drop_table(comparison: dict[str, Any]) -> str:
    c = comparison["embedding_cosine"]
    lines = ["| protocol | accuracy drop (pp) | EER rise (pp) | TAR@FAR=1e-3 drop (pp) |", "|---|---:|---:|---:|"]
    for name, d in comparison["drop"].items():
        lines.append(f"| {name} | {d['accuracy_pp']:.3f} | {d['eer_rise_pp']:.3f} | {d['tar_at_far_1e-3_pp']:.3f} |")
    lines += ["", f"Embedding cosine INT8 vs FP32 over {c['faces']} faces: mean {c['mean']:.5f}, "
                  f"1st percentile {c['p1']:.5f}, min {c['min']:.5f}"]
    return "\n".join(lines)
