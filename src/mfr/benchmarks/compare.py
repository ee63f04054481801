"""FP32 vs INT8 of one package on one dataset: the accuracy drop and how far the embeddings move."""

from __future__ import annotations

from typing import Any

import numpy as np

from mfr.benchmarks.report import NOT_RESOLVED, percent, resolution_note
from mfr.benchmarks.verification import EvalReport


def _change_pp(new: float | None, old: float | None) -> float | None:
    """``new`` minus ``old`` in percentage points (rounded to 1e-4); None where either is not resolved."""
    return None if new is None or old is None else round(100 * (new - old), 4)


def protocol_changes(base: EvalReport, other: EvalReport) -> dict[str, dict[str, float | None]]:
    """Per protocol, ``other`` minus ``base`` in percentage points (rounded to 1e-4)."""
    changes = {}
    for name, b in base.protocols.items():
        r = other.protocols[name]
        changes[name] = {
            "accuracy_pp": _change_pp(r.accuracy, b.accuracy),
            "eer_pp": _change_pp(r.eer, b.eer),
            "tar_at_far_1e-3_pp": _change_pp(r.tar_at_far["1e-3"], b.tar_at_far["1e-3"]),
        }
    return changes


def _negated(value: float | None) -> float | None:
    return None if value is None else 0.0 - value  # 0.0 - x keeps a zero change a plain 0.0 in the JSON


def cosine_histogram(cosines: np.ndarray, bins: int = 40) -> dict[str, list[float]]:
    """Counts of per-face cosines in ``bins`` equal bins from the lowest (to 3 decimals, down) to 1."""
    low = min(float(np.floor(cosines.min() * 1000) / 1000), 0.999)
    counts, edges = np.histogram(np.clip(cosines, low, 1.0), bins=bins, range=(low, 1.0))
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}


def compare_precisions(fp32: EvalReport, int8: EvalReport) -> dict[str, Any]:
    drop = {name: {"accuracy_pp": _negated(c["accuracy_pp"]), "eer_rise_pp": c["eer_pp"],
                   "tar_at_far_1e-3_pp": _negated(c["tar_at_far_1e-3_pp"])}
            for name, c in protocol_changes(fp32, int8).items()}
    cosines = np.concatenate([(fp32.embeddings[k] * int8.embeddings[k]).sum(axis=1) for k in fp32.embeddings])
    return {
        "fp32": fp32.to_dict(),
        "int8": int8.to_dict(),
        "drop": drop,
        "embedding_cosine": {"mean": float(cosines.mean()), "min": float(cosines.min()),
                             "p1": float(np.percentile(cosines, 1)), "faces": int(len(cosines)),
                             "histogram": cosine_histogram(cosines)},
    }


def drop_table(comparison: dict[str, Any]) -> str:
    c = comparison["embedding_cosine"]
    lines = ["| protocol | accuracy drop (pp) | EER rise (pp) | TAR@FAR=1e-3 drop (pp) |", "|---|---:|---:|---:|"]
    for name, d in comparison["drop"].items():
        tar = d["tar_at_far_1e-3_pp"]
        lines.append(f"| {name} | {d['accuracy_pp']:.3f} | {d['eer_rise_pp']:.3f} | "
                     f"{NOT_RESOLVED if tar is None else f'{tar:.3f}'} |")
    lines += ["", f"Embedding cosine INT8 vs FP32 over {c['faces']} faces: mean {c['mean']:.5f}, "
                  f"1st percentile {c['p1']:.5f}, min {c['min']:.5f}"]
    return "\n".join(lines)


def side_by_side(reports: list[EvalReport]) -> dict[str, Any]:
    """Several models on one dataset (same pairs, one run): each protocol's figures and the change from
    the first model (e.g. teacher vs student)."""
    change = {report.package: protocol_changes(reports[0], report) for report in reports[1:]}
    return {"models": [r.to_dict() for r in reports], "change_from_first": change}


def side_by_side_table(reports: list[EvalReport]) -> str:
    lines = [f"**{reports[0].dataset}**, one run, same pairs; change relative to {reports[0].package}", "",
             "| protocol | package | accuracy ± std | EER (95% CI) | TAR@FAR=1e-3 | accuracy change | EER change |",
             "|---|---|---:|---:|---:|---:|---:|"]
    base = reports[0]
    for name in base.protocols:
        for report in reports:
            r, b = report.protocols[name], base.protocols[name]
            delta = ("–", "–") if report is base else (f"{100 * (r.accuracy - b.accuracy):+.2f} pp",
                                                        f"{100 * (r.eer - b.eer):+.2f} pp")
            lines.append(f"| {name} | {report.package} | {100 * r.accuracy:.2f} % ± {100 * r.accuracy_std:.2f} | "
                         f"{100 * r.eer:.2f} % ({100 * r.eer_ci95[0]:.2f}–{100 * r.eer_ci95[1]:.2f}) | "
                         f"{percent(r.tar_at_far['1e-3'])} | {delta[0]} | {delta[1]} |")
    return "\n".join(lines + resolution_note(base))
