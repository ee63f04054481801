"""``mfr report``: one self-contained HTML page of a deployment's figures, to look at rather than read.

``inputs`` sorts the JSON the commands wrote (and ``mfr watch --events`` logs) by kind; ``sections``
builds a section per kind given, with plots (``plots``: matplotlib, inline SVG) beside the tables the docs
show (``doc_figures``); ``markup`` writes the page, escaping every string that came from data.
"""

from __future__ import annotations

from pathlib import Path

from mfr.atomic import atomic_file
from mfr.benchmarks.page import sections
from mfr.benchmarks.page.inputs import read_inputs
from mfr.benchmarks.page.markup import page, text
from mfr.errors import DataError


def build_report(paths: list[Path], out: Path, title: str = "mfr report", crops_from: list[Path] | None = None,
                 command: str | None = None) -> list[str]:
    """Write the page for ``paths`` to ``out`` (atomically); the sections it holds, by id."""
    inputs = read_inputs(paths)
    built = [sections.accuracy(inputs), sections.speed(inputs), sections.camera_run(inputs, crops_from or []),
             sections.gallery(inputs), sections.machines(inputs)]
    chosen = [section for section in built if section is not None]
    if not [s for s in chosen if s[0] != "hardware"]:
        raise DataError("nothing to report: none of the files is an output the report shows ("
                        + "; ".join(inputs.not_shown) + ")")
    footer = (f"Built by <code>{text(command)}</code>." if command else
              f"Built from {text(', '.join(str(p) for p in paths))}.") + "".join(
        f"<br>Not shown: {text(line)}" for line in inputs.not_shown)
    with atomic_file(Path(out), suffix=".html", private=True) as tmp:  # it may show faces (crops)
        tmp.write_text(page(title, chosen, footer), encoding="utf-8")
    return [section_id for section_id, _, _ in chosen]
