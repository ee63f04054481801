"""The CLI's surface: one meaning per option name across commands."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mfr.cli.main import cli


def test_json_prints_one_json_document_on_stdout_and_report_writes_a_file(tmp_path):
    """--json means JSON on stdout in every command (the measuring commands' tables go to stderr then);
    --report FILE writes the file; --json FILE, the older spelling of --report, still does."""
    runner = CliRunner()
    printed = runner.invoke(cli, ["bench", "search", "--templates", "200", "--batch", "2", "--json"])
    assert printed.exit_code == 0, printed.output
    data = json.loads(printed.stdout)  # nothing but the JSON document
    assert [row["templates"] for row in data["results"]] == [200]
    assert "templates" in printed.stderr  # the table, for people
    written = runner.invoke(cli, ["bench", "search", "--templates", "200", "--report", str(tmp_path / "a.json")])
    assert written.exit_code == 0 and "templates" in written.stdout
    assert json.loads((tmp_path / "a.json").read_text())["results"][0]["templates"] == 200
    older = runner.invoke(cli, ["bench", "search", "--templates", "200", "--json", str(tmp_path / "b.json")])
    assert older.exit_code == 0 and json.loads((tmp_path / "b.json").read_text())["results"][0]["templates"] == 200


def test_eval_refuses_an_option_of_the_other_mode_instead_of_ignoring_it():
    runner = CliRunner()
    for dataset, option in (("lfw", ["--far", "0.1"]), ("lfw", ["--score", "as-norm"]),
                            ("lfw-openset", ["--no-flip"]), ("lfw-openset", ["--bootstrap", "0"]),
                            ("mfr2-openset", ["--fusion", "mean"]), ("lfw", ["--detector", "yunet"])):
        result = runner.invoke(cli, ["eval", "--model", "nowhere", "--dataset", dataset, *option])
        assert result.exit_code == 2 and f"not to {dataset}" in result.output, (dataset, option, result.output)


def test_old_option_names_still_work_and_help_shows_the_new_ones():
    runner = CliRunner()
    help_text = runner.invoke(cli, ["eval", "--help"]).output
    assert "--model" in help_text and "--package" not in help_text and "--mask-seed" not in help_text
    for spelling in ("--model", "--package"):  # both reach the same option: the error is about the model
        result = runner.invoke(cli, ["eval", spelling, "nowhere", "--dataset", "lfw", "--no-cache"])
        assert result.exit_code == 1 and "nowhere" in result.output, result.output
