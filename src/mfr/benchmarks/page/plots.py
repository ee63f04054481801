"""The report's plots: matplotlib figures written as SVG text, to sit inside the page.

SVG keeps text as text (``svg.fonttype = none``), so axis labels are searchable and testable in the page
and stay sharp at any zoom; no font or script is fetched. Each function takes plain data (lists, dicts)
and returns one ``<svg>`` element.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from mfr.errors import MfrError

WIDTH, HEIGHT = 6.4, 3.8  # inches at 72 points: about 460 x 275 px


@contextmanager
def figure(columns: int = 1, width: float = WIDTH, height: float = HEIGHT) -> Iterator[tuple[Any, list[Any]]]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MfrError("mfr report needs matplotlib: pip install 'mfr[eval]'") from None
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10,
                                "svg.hashsalt": "mfr"}):
        fig, axes = plt.subplots(1, columns, figsize=(width * columns if columns > 1 else width, height))
        try:
            yield fig, list(np.atleast_1d(axes))
        finally:
            plt.close(fig)


def to_svg(fig: Any) -> str:
    with warnings.catch_warnings():  # labels too long for the margins are cut, not an error
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def roc_det(curves: list[tuple[str, list[float], list[float]]]) -> str:
    """ROC (TAR vs FAR) and DET (FNMR vs FAR) of each labelled curve, on one pair of axes each."""
    with figure(2, width=4.6) as (fig, (roc, det)):
        for label, far, tar in curves:
            far_, tar_ = np.clip(np.asarray(far), 1e-6, 1), np.asarray(tar)
            roc.plot(far_, tar_, label=label, lw=1.3)
            det.plot(far_, np.clip(1 - tar_, 1e-6, 1), label=label, lw=1.3)
        low = max(1e-6, min(min(f for f in far if f > 0) for _, far, _ in curves))
        roc.set(xscale="log", xlim=(low, 1), xlabel="false accept rate (FAR)", ylabel="true accept rate (TAR)",
                title="ROC")
        det.set(xscale="log", yscale="log", xlim=(low, 1), ylim=(1e-4, 1), xlabel="false accept rate (FAR)",
                ylabel="false reject rate (FNMR)", title="DET")
        for ax in (roc, det):
            ax.grid(True, which="both", alpha=0.3)
        roc.legend(fontsize=7, loc="lower right")
        return to_svg(fig)


def cosine_histograms(histograms: list[tuple[str, dict[str, list[float]]]]) -> str:
    """Per-face cosine between the INT8 and FP32 embeddings, one histogram per model."""
    with figure() as (fig, (ax,)):
        for label, hist in histograms:
            edges, counts = np.asarray(hist["edges"]), np.asarray(hist["counts"], float)
            ax.stairs(counts / max(counts.sum(), 1), edges, label=label, fill=False, lw=1.3)
        ax.set(xlabel="cosine of INT8 and FP32 embeddings of a face", ylabel="share of faces",
               title="How far INT8 moves each face's embedding")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
        return to_svg(fig)


def fallback_steps(runs: list[tuple[str, list[dict[str, Any]]]]) -> str:
    """The calibration's fallback: held-out cosine after each layer returned to float."""
    with figure() as (fig, (ax,)):
        for label, steps in runs:
            ax.plot(range(len(steps)), [s["heldout_cosine"] for s in steps], marker="o", ms=3, label=label)
        ax.set(xlabel="layers kept in float", ylabel="held-out cosine (INT8 vs FP32)",
               title="Calibration fallback, step by step")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
        return to_svg(fig)


def latency_cdfs(rows: list[tuple[str, list[float]]]) -> str:
    """Latency distributions (the 0th, 5th, ..., 100th percentile) per engine and batch."""
    with figure() as (fig, (ax,)):
        for label, percentiles in rows:
            ax.plot(percentiles, np.linspace(0, 1, len(percentiles)), label=label, lw=1.3, drawstyle="steps-post")
        ax.set(xscale="log", xlabel="latency per call (ms)", ylabel="share of calls at most this",
               title="Latency CDF per engine and batch")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        return to_svg(fig)


def throughput(series: dict[str, list[tuple[int, float]]]) -> str:
    """Faces per second against batch size, per engine."""
    with figure() as (fig, (ax,)):
        for label, points in series.items():
            batches, rates = zip(*sorted(points), strict=True)
            ax.plot(batches, rates, marker="o", ms=3, label=label)
        ax.set(xscale="log", xlabel="batch size", ylabel="faces per second (at the median latency)",
               title="Throughput against batch size")
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
        return to_svg(fig)


def stage_bars(bars: list[tuple[str, dict[str, float]]]) -> str:
    """Stacked milliseconds per frame by stage, one bar per loop setting."""
    stages = list(dict.fromkeys(stage for _, parts in bars for stage in parts))
    with figure(height=max(2.2, 0.45 * len(bars) + 1.2)) as (fig, (ax,)):
        left = np.zeros(len(bars))
        for stage in stages:
            values = np.array([parts.get(stage, 0.0) for _, parts in bars])
            ax.barh(range(len(bars)), values, left=left, label=stage)
            left += values
        ax.set_yticks(range(len(bars)), [label for label, _ in bars])
        ax.set(xlabel="milliseconds of work per frame", title="Camera loop: where each frame's time goes")
        ax.invert_yaxis()
        ax.legend(fontsize=7, ncol=4, loc="lower right")
        ax.grid(True, axis="x", alpha=0.3)
        return to_svg(fig)


def gallery_scale(rows: list[dict[str, Any]]) -> str:
    """Search p95 and recall@1 against templates, per method."""
    with figure(2, width=4.6) as (fig, (speed, recall)):
        methods = list(dict.fromkeys(r["method"] for r in rows))
        for method in methods:
            mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["templates"])
            sizes = [r["templates"] for r in mine]
            speed.plot(sizes, [r["p95_ms"] for r in mine], marker="o", ms=3, label=method)
            recall.plot(sizes, [r["recall_at_1"] for r in mine], marker="o", ms=3, label=method)
        speed.set(xscale="log", yscale="log", xlabel="templates in the gallery", ylabel="search p95 (ms)",
                  title="Search time")
        recall.set(xscale="log", xlabel="templates in the gallery", ylabel="recall@1", title="Search recall")
        for ax in (speed, recall):
            ax.grid(True, which="both", alpha=0.3)
        speed.legend(fontsize=7)
        return to_svg(fig)


def track_timeline(tracks: list[dict[str, Any]]) -> str:
    """One line per track from its first to its last event: grey while undecided, coloured from its first
    decision, a cross where its identity changed, a diamond where a decision was contested; masked faces
    drawn dashed."""
    with figure(height=max(2.2, 0.28 * len(tracks) + 1.2)) as (fig, (ax,)):
        for row, track in enumerate(tracks):
            style = "--" if track["masked"] else "-"
            ax.plot([track["start"], track["end"]], [row, row], color="0.7", lw=3, ls=style)
            if track["named_at"] is not None:
                ax.plot([track["named_at"], track["end"]], [row, row], lw=3, ls=style,
                        color="tab:green" if track["name"] else "tab:blue")
            for at in track["changed_at"]:
                ax.plot([at], [row], marker="x", color="tab:red", ms=7)
            for at in track["contested_at"]:
                ax.plot([at], [row], marker="D", color="tab:orange", ms=5)
        ax.set_yticks(range(len(tracks)), [t["label"] for t in tracks])
        ax.invert_yaxis()
        ax.set(xlabel="seconds since the first event",
               title="Tracks: grey undecided, green named, blue unknown; x changed, ◆ contested; masked dashed")
        ax.grid(True, axis="x", alpha=0.3)
        return to_svg(fig)
