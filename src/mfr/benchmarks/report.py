"""Presenting evaluation results: a Markdown table, JSON, and ROC/DET plots (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfr import metrics
from mfr.atomic import atomic_file
from mfr.benchmarks.verification import EvalReport
from mfr.errors import MfrError
from mfr.runtime.machine import cpu_label

NOT_RESOLVED = "n/r"


def percent(value: float | None) -> str:
    """A rate as a percentage, or ``n/r`` where the pairs cannot resolve it (``metrics.far_resolvable``)."""
    return NOT_RESOLVED if value is None else f"{100 * value:.2f} %"


def resolution_note(report: EvalReport) -> list[str]:
    """Why a figure reads ``n/r``, naming the impostor count, when one does."""
    unresolved = {name: r.impostor_pairs for name, r in report.protocols.items()
                  if None in r.tar_at_far.values() or None in r.fnmr_at_fmr.values()}
    if not unresolved:
        return []
    counts = ", ".join(f"{name} {count}" for name, count in unresolved.items())
    return ["", f"{NOT_RESOLVED}: not resolvable, the FAR lies below 1/(impostor pairs) (impostor pairs: {counts}); "
                "at such a FAR only zero false accepts are allowed"]


def markdown_table(report: EvalReport) -> str:
    lines = [
        f"**{report.model}** ({report.precision}, {report.backend}, flip={report.flip}) on **{report.dataset}**"
        + ("" if report.masks is None else f", masks: {report.masks}"),
        "",
        "| protocol | pairs | accuracy | ± std | EER (95% CI) | TAR@FAR=1e-2 | TAR@FAR=1e-3 "
        "| FNMR@FMR100 | FNMR@FMR1000 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report.protocols.items():
        lines.append(
            f"| {name} | {r.pairs} | {100 * r.accuracy:.2f} % | {100 * r.accuracy_std:.2f} | "
            f"{100 * r.eer:.2f} % ({100 * r.eer_ci95[0]:.2f}–{100 * r.eer_ci95[1]:.2f}) | "
            f"{percent(r.tar_at_far['1e-2'])} | {percent(r.tar_at_far['1e-3'])} | "
            f"{percent(r.fnmr_at_fmr['FMR100'])} | {percent(r.fnmr_at_fmr['FMR1000'])} |"
        )
    lines += resolution_note(report)
    if report.detection is not None:
        d = report.detection
        lines += ["", f"Detection ({d.detector}, no-face policy {d.policy}): {d.images} images, {d.single_face} one "
                      f"face, {d.several_faces} several (largest used), {d.no_face} none"
                      + (f" e.g. {', '.join(d.no_face_examples)}" if d.no_face else "")]
    lines += ["", f"{report.seconds:.1f} s on {cpu_label(report.machine)}"]
    return "\n".join(lines)


def save_curves(report: EvalReport, directory: Path) -> list[Path]:
    """ROC (TAR vs FAR) and DET (FNMR vs FMR) curves of every protocol, as PNG files."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MfrError("plots need matplotlib: pip install 'mfr[eval]'") from None
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{Path(report.package).name}_{report.dataset}_{report.precision}"
    written = []
    for kind in ("roc", "det"):
        fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
        for name, (scores, same) in report.scores.items():
            roc = metrics.roc_curve(scores, same)
            far = np.clip(roc.far, 1e-5, 1)
            if kind == "roc":
                ax.plot(far, roc.tar, label=name)
            else:
                ax.plot(far, np.clip(1 - roc.tar, 1e-5, 1), label=name)
        ax.set_xscale("log")
        if kind == "roc":
            ax.set(xlabel="FAR", ylabel="TAR", title=f"ROC: {report.model} on {report.dataset}", xlim=(1e-4, 1))
        else:
            ax.set_yscale("log")
            ax.set(xlabel="FMR", ylabel="FNMR", title=f"DET: {report.model} on {report.dataset}",
                   xlim=(1e-4, 1), ylim=(1e-4, 1))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = directory / f"{stem}_{kind}.png"
        with atomic_file(path, suffix=".png") as tmp:
            fig.savefig(tmp)
        plt.close(fig)
        written.append(path)
    return written


ERROR_FIELDS = ["package", "model", "precision", "protocol", "fold", "left", "right", "same", "score", "threshold"]


def write_errors_csv(reports: list[EvalReport], path: Path) -> int:
    """Every report's wrongly judged pairs (``EvalReport.errors``) as one CSV; returns how many rows."""
    import csv

    rows = [row for report in reports for row in report.errors()]
    with atomic_file(path, suffix=".csv") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ERROR_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
