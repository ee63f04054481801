"""Bad input to ``mfr-export onnx``: a clear message naming the file, exit code 1, nothing written."""

from __future__ import annotations

import argparse
from pathlib import Path

from click.testing import CliRunner

from mfr.cli.export_cli import cli
from tests.conftest import needs_torch


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _assert_refused(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_unknown_model_lists_known_models(tmp_path):
    result = run("onnx", "--model", "facenet512", "--out", str(tmp_path / "out"))
    _assert_refused(result, "unknown model 'facenet512'", "mobilefacenet", "iresnet100")
    assert not (tmp_path / "out").exists()


def test_non_empty_output_directory_is_refused_without_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run("onnx", "--model", "mobilefacenet", "--out", str(out))
    _assert_refused(result, str(out), "not empty", "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_iresnet_without_weights_asks_for_them(tmp_path):
    result = run("onnx", "--model", "iresnet50", "--out", str(tmp_path / "out"))
    _assert_refused(result, "iresnet50 ships no weights", "--weights")


@needs_torch
class TestBadCheckpoints:
    def _export(self, tmp_path: Path, weights: Path, model: str = "mobilefacenet"):
        out = tmp_path / "out"
        result = run("onnx", "--model", model, "--weights", str(weights), "--out", str(out))
        assert not out.exists(), "a failed export must leave nothing behind"
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")], "staging dir left behind"
        return result

    def test_missing_weights_file(self, tmp_path):
        missing = tmp_path / "nope.pt"
        _assert_refused(self._export(tmp_path, missing), "weights file not found", str(missing))

    def test_file_that_is_not_a_checkpoint(self, tmp_path):
        bogus = tmp_path / "notes.pt"
        bogus.write_text("these are not weights")
        _assert_refused(self._export(tmp_path, bogus), str(bogus), "is not a PyTorch checkpoint")

    def test_checkpoint_needing_unsafe_unpickling_is_refused(self, tmp_path):
        import torch

        unsafe = tmp_path / "pickled.pt"
        # training scripts often save their argparse namespace beside the weights
        torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "args": argparse.Namespace(lr=0.1)}, unsafe)
        _assert_refused(self._export(tmp_path, unsafe), str(unsafe), "unsafe unpickling", "state_dict")

    def test_checkpoint_for_another_architecture_lists_keys(self, tmp_path):
        import torch

        from mfr.registry import get_model_entry

        other = tmp_path / "retinaface.pth"
        torch.save(get_model_entry("retinaface-mnet025").build().state_dict(), other)
        result = self._export(tmp_path, other)
        _assert_refused(result, str(other), "does not match architecture mobilefacenet", "missing keys (",
                        "conv1.0.weight", "unexpected keys (", "body.stage1")

    def test_shape_mismatch_is_listed(self, tmp_path):
        import torch

        from mfr.registry import get_model_entry

        state = get_model_entry("mobilefacenet").build().state_dict()
        state["conv3.weight"] = torch.zeros(256, 512, 1, 1)
        wrong = tmp_path / "wide.pt"
        torch.save(state, wrong)
        _assert_refused(self._export(tmp_path, wrong), "shape mismatches (1)", "conv3.weight (256, 512, 1, 1)")
