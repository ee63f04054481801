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
from pathlib import Path
from typing import Any

from mfr.runtime.machine import cpu_label

BLOCK = re.compile(r"(<!-- figure: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /figure -->)", re.S)


def _percent(value: float | None, digits: int = 2) -> str:
    return "n/r" if value is None else f"{100 * value:.{digits}f} %"


def _sources(reports: list[dict[str, Any]]) -> list[str]:
    """The commands and machines a table's JSON came from (each once)."""
    lines = []
    for report in reports:
        command = report.get("command")
        line = (f"`{command}`" if command else "command not recorded") + f"; {cpu_label(report['machine'])}"
        if line not in lines:
            lines.append(line)
    return ["", *[f"- {line}" for line in lines]]


def render_eval(reports: list[dict[str, Any]]) -> str:
    """``mfr eval`` reports (verification): one row per model, precision, dataset and protocol."""
    lines = ["| model | precision | dataset | protocol | accuracy | EER (95 % CI) | TAR@FAR=1e-3 | wall time |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for report in reports:
        dataset = report["dataset"]
        if report.get("detection"):  # photos detected and aligned: which detector, and faces it missed
            found = report["detection"]
            dataset += f" ({found['detector'].split()[0]}, {found['no_face']} missed)"
        for name, figures in report["protocols"].items():
            low, high = figures["eer_ci95"]
            lines.append(
                f"| {report['model']} | {report['precision']} ({report['backend']}) | {dataset} | {name} | "
                f"{_percent(figures['accuracy'])} ± {100 * figures['accuracy_std']:.2f} | "
                f"{_percent(figures['eer'])} ({100 * low:.2f}–{100 * high:.2f}) | "
                f"{_percent(figures['tar_at_far']['1e-3'])} | {report['seconds']:.0f} s |")
    return "\n".join(lines + _sources(reports))


def render_drop(reports: list[dict[str, Any]]) -> str:
    """``mfr eval --precision both`` reports: FP32, INT8 and the drop per protocol."""
    lines = ["| model | dataset | protocol | FP32 accuracy | INT8 accuracy | EER FP32 → INT8 | mean cosine |",
             "|---|---|---|---:|---:|---:|---:|"]
    for report in reports:
        fp32, int8 = report["fp32"], report["int8"]
        for name, change in report["drop"].items():
            a, b = fp32["protocols"][name], int8["protocols"][name]
            lines.append(f"| {fp32['model']} | {fp32['dataset']} | {name} | {_percent(a['accuracy'])} | "
                         f"{_percent(b['accuracy'])} | {_percent(a['eer'])} → {_percent(b['eer'])} "
                         f"({change['eer_rise_pp']:+.2f} pp) | {report['embedding_cosine']['mean']:.4f} |")
    return "\n".join(lines + _sources([{**r["int8"], "command": r.get("command")} for r in reports]))


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


def render_latency(reports: list[dict[str, Any]]) -> str:
    """``mfr bench latency`` reports, as the command prints them."""
    from mfr.benchmarks.latency import LatencyReport, markdown_table

    return "\n\n".join(markdown_table(LatencyReport.from_dict(r)) for r in reports) + "\n" + "\n".join(
        _sources(reports))


def render_preprocess(reports: list[dict[str, Any]]) -> str:
    """``mfr bench preprocess`` reports, as the command prints them."""
    from mfr.benchmarks.preprocess import PreprocessReport, markdown_table

    return "\n\n".join(markdown_table(PreprocessReport.from_dict(r)) for r in reports) + "\n" + "\n".join(
        _sources(reports))


RENDERERS: dict[str, Callable[[list[dict[str, Any]]], str]] = {
    "eval": render_eval, "drop": render_drop, "watch": render_watch, "latency": render_latency,
    "preprocess": render_preprocess}


def render_block(spec: str, root: Path) -> str:
    kind, *files = spec.split()
    if kind not in RENDERERS:
        raise ValueError(f"unknown figure {kind!r}; choose from {', '.join(RENDERERS)}")
    return RENDERERS[kind]([json.loads((root / name).read_text()) for name in files]) + "\n"


def rendered(text: str, root: Path) -> str:
    """``text`` with every figure block rendered from its JSON."""
    return BLOCK.sub(lambda m: m.group(1) + render_block(m.group("spec"), root) + m.group(4), text)


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str]) -> int:
    """Rewrite (or with ``--check``, compare) the figure blocks of the checkout in the current directory."""
    root = Path.cwd()
    check = "--check" in argv
    stale = []
    for path in documents(root):
        text = path.read_text()
        new = rendered(text, root)
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new)
    for path in stale:
        print(f"{path.relative_to(root)}: {'differs from its JSON' if check else 'rewritten'}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
