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
    assert "--json FILE is an older spelling of --report FILE" in older.stderr
    assert "older spelling" not in written.stderr + printed.stderr


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


def test_the_previous_quick_starts_spellings_still_parse():
    """The option names of the README's earlier quick starts reach the same parameters as the new names."""
    old_and_new = [
        (["eval", "--package", "p", "--dataset", "lfw", "--json", "x.json", "--mask-seed", "3"],
         ["eval", "--model", "p", "--dataset", "lfw", "--report", "x.json", "--seed", "3"]),
        (["watch", "--source", "v.mp4", "--gallery", "g.db", "--engine", "e"],
         ["watch", "--source", "v.mp4", "--gallery", "g.db", "--model", "e"]),
        (["thresholds", "--package", "p", "--mask-seed", "2"], ["thresholds", "--model", "p", "--seed", "2"]),
        (["bench", "latency", "--engine", "a", "--engine", "b"], ["bench", "latency", "--model", "a", "--model", "b"]),
        (["bench", "watch", "--engine", "e"], ["bench", "watch", "--model", "e"]),
        (["identify", "x.jpg", "--package", "p"], ["identify", "x.jpg", "--model", "p"]),
    ]

    def parsed(args: list[str]) -> dict:
        group, command = cli, None
        while True:
            command = group.get_command(None, args[0])  # type: ignore[arg-type]
            args = args[1:]
            if not hasattr(command, "get_command"):
                break
            group = command
        params = dict(command.make_context(command.name, list(args)).params)
        for name in ("json_out", "report_file"):  # the two spellings of one file, compared below as one
            params.pop(name, None)
        return params

    for old, new in old_and_new:
        assert parsed(old) == parsed(new), old


def test_an_older_spelling_gets_a_note_naming_the_current_one(tmp_path):
    """The aliases work for a release, and say so on stderr (stdout keeps only the command's output)."""
    runner = CliRunner()
    for command, older, current in ((["bench", "latency"], "--engine", "--model"), (["eval"], "--package", "--model"),
                                    (["gallery", "reembed"], "--package", "--model")):
        result = runner.invoke(cli, [*command, older, str(tmp_path / "missing")])
        assert f"Note: {older} is an older spelling of {current}" in result.stderr
        assert "older spelling" not in result.stdout
    current = runner.invoke(cli, ["bench", "latency", "--model", str(tmp_path / "missing")])
    assert "older spelling" not in current.stderr
    seed = runner.invoke(cli, ["thresholds", "--model", str(tmp_path / "missing"), "--mask-seed", "2"])
    assert "Note: --mask-seed is an older spelling of --seed" in seed.stderr
