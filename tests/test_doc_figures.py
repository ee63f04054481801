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


def test_reports_name_data_images_relative_to_the_data_root(tmp_path, monkeypatch):
    """A committed report names the image ("mfr2/X/X_0001.png"), not where one machine keeps its data."""
    from mfr.paths import DATA_ENV, report_path

    image = tmp_path / "data" / "mfr2" / "X" / "X_0001.png"
    image.parent.mkdir(parents=True)
    image.touch()
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "data"))
    assert report_path(image) == "mfr2/X/X_0001.png"
    assert report_path(tmp_path / "elsewhere.png") == str(tmp_path / "elsewhere.png")


def test_committed_reports_hold_no_absolute_paths_outside_their_command_and_machine():
    import json

    def strings(value):
        if isinstance(value, dict):
            return [s for key, item in value.items() if key not in ("command", "machine") for s in strings(item)]
        if isinstance(value, list):
            return [s for item in value for s in strings(item)]
        return [value] if isinstance(value, str) else []

    for path in sorted((ROOT / "docs" / "figures").glob("*.json")):
        absolute = [s for s in strings(json.loads(path.read_text())) if s.startswith("/")]
        assert not absolute, f"{path.name}: {absolute}"


def test_a_figure_whose_json_is_missing_is_named_and_left_as_it_is(tmp_path, monkeypatch, capsys):
    from mfr.benchmarks.doc_figures import main

    (tmp_path / "docs").mkdir()
    block = "<!-- figure: eval docs/figures/gone.json -->\nold table\n<!-- /figure -->\n"
    (tmp_path / "README.md").write_text(block)
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    assert "docs/figures/gone.json: not found" in capsys.readouterr().err
    assert (tmp_path / "README.md").read_text() == block
