"""The docs' tables are rendered from the committed JSON the commands wrote; none is typed by hand."""

from __future__ import annotations

import re
from pathlib import Path

from mfr.benchmarks.doc_figures import BLOCK, documents, rendered

ROOT = Path(__file__).resolve().parents[1]


def test_every_committed_table_is_what_its_committed_json_renders():
    blocks = 0
    for path in documents(ROOT):
        text = path.read_text()
        blocks += len(BLOCK.findall(text))
        assert rendered(text, ROOT) == text, (f"{path.relative_to(ROOT)}: a figure differs from its JSON; run "
                                              f"python -m mfr.benchmarks.doc_figures")
    assert blocks >= 3


def test_a_number_changed_by_hand_is_caught():
    text = (ROOT / "README.md").read_text()
    match = next(m for m in BLOCK.finditer(text) if re.search(r"\d+\.\d\d %", m.group("body")))
    number = re.search(r"\d+\.\d\d %", match.group("body"))
    assert number is not None
    start = match.start("body") + number.start()
    digit = "2" if text[start] == "1" else "1"
    tampered = text[:start] + digit + text[start + 1:]
    assert tampered != text and rendered(tampered, ROOT) == text
