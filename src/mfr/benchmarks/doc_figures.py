"""The docs' figures, generated from the JSON the commands wrote: no number in the docs is typed by hand.

A figure in a Markdown file is a block between two comments,

    <!-- figure: eval docs/figures/mobilefacenet-lfw.json docs/figures/mobilefacenet-mfr2.json -->
    ...the table, generated...
    <!-- /figure -->

naming a renderer (``RENDERERS``) and the JSON files (``mfr eval --report FILE``, ``mfr bench ... --report
FILE``; paths relative to the repository root) it renders. ``python -m mfr.benchmarks.doc_figures``
rewrites every block of README.md and docs/*.md from its JSON; ``--check`` only says which blocks differ
(a test runs it, so a committed table can never disagree with its committed JSON). Each table ends with
the commands that wrote its JSON and the machines they ran on, as the JSON records them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mfr.manifest import FallbackRecord
from mfr.runtime.machine import cpu_label

BLOCK = re.compile(r"(<!-- figure: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /figure -->)", re.S)


def _percent(value: float | None, digits: int = 2) -> str:
    return "n/r" if value is None else f"{100 * value:.{digits}f} %"


def _change(pp: float) -> str:
    """A signed change in percentage points ("+0.067 pp"; a zero is "+0.000", never "-0.000")."""
    return f"{pp + 0.0:+.3f} pp"


def _sources(reports: list[dict[str, Any]]) -> list[str]:
    """The commands and machines a table's JSON came from (each once)."""
    lines = []
    for report in reports:
        command = report.get("command")
        line = (f"`{command}`" if command else "command not recorded") + f"; {cpu_label(report['machine'])}"
        if line not in lines:
            lines.append(line)
    return ["", *[f"- {line}" for line in lines]]


def _dataset(report: dict[str, Any]) -> str:
    """What an ``mfr eval`` report was judged on: the dataset, its pairs (folds 6-10 of LFW: 3,000), the masks
    drawn on it, and for photos the detector that aligned them and the faces it missed."""
    details = [f"{next(iter(report['protocols'].values()))['pairs']:,} pairs"]
    if report.get("masks"):
        details.append(f"masks {report['masks']}")
    if report.get("detection"):
        found = report["detection"]
        precision = " int8" if "int8" in found["detector"] else ""
        details.append(f"{found['detector'].split()[0]}{precision}, {found['no_face']} missed")
    return f"{report['dataset']} ({'; '.join(details)})"


def render_eval(reports: list[dict[str, Any]]) -> str:
    """``mfr eval`` reports (verification): one row per model, precision, dataset and protocol."""
    lines = ["| model | precision | dataset | protocol | accuracy | EER (95 % CI) | TAR@FAR=1e-3 | wall time |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for report in reports:
        dataset = _dataset(report)
        for name, figures in report["protocols"].items():
            low, high = figures["eer_ci95"]
            lines.append(
                f"| {report['model']} | {report['precision']} ({report['backend']}) | {dataset} | {name} | "
                f"{_percent(figures['accuracy'])} ± {100 * figures['accuracy_std']:.2f} | "
                f"{_percent(figures['eer'])} ({100 * low:.2f}–{100 * high:.2f}) | "
                f"{_percent(figures['tar_at_far']['1e-3'])} | {report['seconds']:.0f} s |")
    return "\n".join(lines + _sources(reports))


def render_drop(reports: list[dict[str, Any]]) -> str:
    """``mfr eval --precision both`` reports: FP32 and INT8 per protocol, the drop, and how close the
    embeddings are (one pair of 3,000 moves accuracy by 0.033 pp)."""
    lines = ["| model | dataset | protocol | accuracy FP32 → INT8 | EER FP32 → INT8 | TAR@FAR=1e-3, INT8 − FP32 | "
             "cosine INT8 vs FP32: mean / 1st pct / min (faces) |",
             "|---|---|---|---:|---:|---:|---:|"]
    for report in reports:
        fp32, int8, cosine = report["fp32"], report["int8"], report["embedding_cosine"]
        dataset = _dataset(fp32)
        for name, change in report["drop"].items():
            a, b = fp32["protocols"][name], int8["protocols"][name]
            tar = change["tar_at_far_1e-3_pp"]  # the drops are FP32 - INT8; shown as INT8 - FP32, like the EER
            lines.append(f"| {fp32['model']} | {dataset} | {name} | "
                         f"{_percent(a['accuracy'])} → {_percent(b['accuracy'])} ({_change(-change['accuracy_pp'])}) | "
                         f"{_percent(a['eer'])} → {_percent(b['eer'])} ({change['eer_rise_pp']:+.3f} pp) | "
                         f"{'n/r' if tar is None else _change(-tar)} | {cosine['mean']:.5f} / {cosine['p1']:.5f} / "
                         f"{cosine['min']:.5f} ({cosine['faces']:,}) |")
    return "\n".join(lines + _sources([{**r["int8"], "command": r.get("command")} for r in reports]))


def render_calibration(reports: list[dict[str, Any]]) -> str:
    """``mfr-export calibrate --report`` records: per INT8 model, the layers the fallback kept in float and
    where it stopped (held-out cosine to FP32, accuracy drop on the pairs that steered it)."""
    models = {"onnxruntime": "`model.int8.onnx` (ONNX Runtime, int8 weights)",
              "onnxruntime_u8_weights": "`model.int8.u8.onnx` (ONNX Runtime, uint8 weights)",
              "tensorrt_qdq": "`model.int8.trt.onnx` (TensorRT Q/DQ)"}
    lines = ["| model | INT8 model | layers kept in float | held-out cosine | steering measure | target met |",
             "|---|---|---|---:|---:|---|"]
    for report in reports:
        for key, label in models.items():
            part = report.get(key)
            if not part:
                continue
            last = asdict(FallbackRecord.from_dict(part, key).chosen)
            if last.get("recall_drop_pp") is not None:  # a detector: FP32 faces missed, landmark error
                drop = (f"{last['recall_drop_pp'] + 0.0:.2f} pp of the FP32 faces missed, landmark NME "
                        f"{last['landmark_nme_pct']:.2f} % on {part['checked_on']}")
                target = f"missed <= {part['max_drop_pp']} pp, NME <= {part['max_nme_pct']} %"
            else:
                drop = ("not checked" if last["lfw_drop_pp"] is None
                        else f"{last['lfw_drop_pp'] + 0.0:.3f} pp on {part['checked_on']}")
                target = f"cosine >= {part['min_cosine']}" + (
                    "" if part.get("max_drop_pp") is None else f", drop <= {part['max_drop_pp']} pp")
            layers = ", ".join(f"`{layer}`" for layer in part["fp_layers"]) or "none"
            lines.append(f"| {report['model']} | {label} | {layers} | {last['heldout_cosine']:.5f} | {drop} | "
                         f"{'yes' if part['target_met'] else 'no'} ({target}) |")
    return "\n".join(lines + _sources(reports))


def render_watch(reports: list[dict[str, Any]]) -> str:
    """``mfr bench watch`` reports: per clip and score, people named and strangers named."""
    lines = ["| clip | score | enrolled appearances named | named wrongly | strangers named | IDF1 | frames/s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for report in reports:
        for run in report["runs"]:
            s = run["score"]
            clip = f"seed {run['seed']}" if run["seed"] is not None else run["clip"]
            lines.append(f"| {clip} | {run['score_rule']} | "
                         f"{s['enrolled_named_correctly']}/{s['enrolled_appearances']} "
                         f"| {s['enrolled_named_wrongly']} | {s['strangers_named']}/{s['stranger_appearances']} | "
                         f"{s['idf1']:.3f} | {run['stats']['frames_per_second']} |")
    return "\n".join(lines + _sources(reports))


def _as_printed(table: Callable[[dict[str, Any]], str], reports: list[dict[str, Any]]) -> str:
    """Reports as their command prints them (``table``), then the commands and machines they came from."""
    return "\n\n".join(table(report) for report in reports) + "\n" + "\n".join(_sources(reports))


def render_latency(reports: list[dict[str, Any]]) -> str:
    """``mfr bench latency`` reports."""
    from mfr.benchmarks.latency import LatencyReport, markdown_table

    return _as_printed(lambda report: markdown_table(LatencyReport.from_dict(report)), reports)


def render_preprocess(reports: list[dict[str, Any]]) -> str:
    """``mfr bench preprocess`` reports."""
    from mfr.benchmarks.preprocess import PreprocessReport, markdown_table

    return _as_printed(lambda report: markdown_table(PreprocessReport.from_dict(report)), reports)


def render_openset(runs: list[dict[str, Any]]) -> str:
    """``mfr eval --dataset lfw-openset|mfr2-openset`` runs, each holding one report per model and precision."""
    from mfr.benchmarks.openset import OpenSetReport, markdown_table

    reports = [{**report, "command": run.get("command")} for run in runs for report in run["reports"]]
    return _as_printed(lambda report: markdown_table(OpenSetReport.from_dict(report)), reports)


def render_gallery(reports: list[dict[str, Any]]) -> str:
    """``mfr bench gallery`` reports."""
    from mfr.benchmarks.gallery_scale import GalleryReport, markdown_table

    return _as_printed(lambda report: markdown_table(GalleryReport.from_dict(report)), reports)


def render_cameras(reports: list[dict[str, Any]]) -> str:
    """``mfr bench cameras`` reports: cameras per box."""
    from mfr.benchmarks.cameras import markdown_table

    return _as_printed(markdown_table, reports)


def render_detection(runs: list[dict[str, Any]]) -> str:
    """``mfr eval --dataset detection`` runs, each holding one report per detector package."""
    from mfr.benchmarks.detection_eval import markdown_table

    reports = [{**report, "command": run.get("command")} for run in runs for report in run["reports"]]
    return _as_printed(markdown_table, reports)


def render_pipeline(reports: list[dict[str, Any]]) -> str:
    """``mfr bench pipeline`` reports."""
    from mfr.benchmarks.pipeline import markdown_table

    return _as_printed(lambda report: markdown_table(report) + f"\n\ndetector {report['detector']}; "
                       f"{report.get('loop', 'sequential')} loop", reports)


RENDERERS: dict[str, Callable[[list[dict[str, Any]]], str]] = {
    "eval": render_eval, "drop": render_drop, "calibration": render_calibration, "watch": render_watch,
    "latency": render_latency, "preprocess": render_preprocess, "openset": render_openset,
    "gallery": render_gallery, "cameras": render_cameras, "detection": render_detection,
    "pipeline": render_pipeline}


def render_block(spec: str, root: Path) -> str:
    kind, *files = spec.split()
    if kind not in RENDERERS:
        raise ValueError(f"unknown figure {kind!r}; choose from {', '.join(RENDERERS)}")
    missing = [name for name in files if not (root / name).is_file()]
    if missing:
        raise ValueError(f"figure {kind!r} needs {', '.join(missing)}: not found (run the command that writes it, "
                         f"with --report)")
    return RENDERERS[kind]([json.loads((root / name).read_text()) for name in files]) + "\n"


def rendered(text: str, root: Path, errors: list[str] | None = None) -> str:
    """``text`` with every figure block rendered from its JSON. A block that cannot be rendered raises, or
    with ``errors`` is left as it is and its reason appended there."""
    def render(match: re.Match[str]) -> str:
        try:
            return match.group(1) + render_block(match.group("spec"), root) + match.group(4)
        except ValueError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
            return match.group(0)
    return BLOCK.sub(render, text)


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str]) -> int:
    """Rewrite (or with ``--check``, compare) the figure blocks of the checkout in the current directory."""
    root = Path.cwd()
    check = "--check" in argv
    stale, failed = [], False
    for path in documents(root):
        text = path.read_text()
        errors: list[str] = []
        new = rendered(text, root, errors)
        for error in errors:
            print(f"{path.relative_to(root)}: {error}", file=sys.stderr)
        failed = failed or bool(errors)
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new)
    for path in stale:
        print(f"{path.relative_to(root)}: {'differs from its JSON' if check else 'rewritten'}")
    return 2 if failed else 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
