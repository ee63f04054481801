"""TensorRT checks that need no TensorRT: every ``tensorrt`` name the code uses exists in TensorRT 10.13.

No TensorRT can be installed where these tests run, so the TensorRT code is checked statically:
(1) every ``trt.X`` / ``trt.X.Y`` attribute (and every ``hasattr``/``getattr`` probe on one) appears in
the API fixture made from ``tensorrt-stubs`` (generated from the real 10.13 bindings); (2) mypy
type-checks the package against those stubs (tests/test_packaging.py), and here we show that a wrong
call would make that check fail.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tensorrt_api.stubs import api_names, prepare_stubs

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "tensorrt_api" / "api.json"


def tensorrt_aliases(tree: ast.Module) -> set[str]:
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update(a.asname or a.name for a in node.names if a.name == "tensorrt")
    return aliases


def chain(node: ast.expr) -> list[str] | None:
    """['trt', 'BuilderFlag', 'FP16'] for trt.BuilderFlag.FP16, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def tensorrt_uses(path: Path) -> list[tuple[str, ...]]:
    """(X,) or (X, Y) for every trt.X / trt.X.Y in the file, plus the names probed by hasattr/getattr."""
    tree = ast.parse(path.read_text())
    aliases = tensorrt_aliases(tree)
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = chain(node)
            if parts and parts[0] in aliases and len(parts) >= 2:
                uses.append(tuple(parts[1:3]))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
            parts = chain(node.args[0])
            if parts and parts[0] in aliases and len(parts) == 2:
                uses.append((parts[1], str(node.args[1].value)))
    return uses


def source_files_using_tensorrt() -> list[Path]:
    files = sorted((ROOT / "src" / "mfr").rglob("*.py"))
    return [p for p in files if tensorrt_aliases(ast.parse(p.read_text()))]


def test_the_tensorrt_code_is_where_we_expect_it():
    found = {str(p.relative_to(ROOT)) for p in source_files_using_tensorrt()}
    assert {"src/mfr/export/trt_build.py", "src/mfr/runtime/engine_trt.py"} <= found, found


def test_every_tensorrt_name_used_exists_in_tensorrt_10_13():
    api = json.loads(FIXTURE.read_text())
    module, classes = set(api["module"]), api["classes"]
    checked, missing = 0, []
    for path in source_files_using_tensorrt():
        for use in tensorrt_uses(path):
            checked += 1
            if use[0] not in module and use[0] != "__version__":
                missing.append(f"{path.name}: trt.{use[0]}")
            elif len(use) == 2 and use[0] in classes and use[1] not in classes[use[0]]:
                missing.append(f"{path.name}: trt.{use[0]}.{use[1]}")
    assert checked >= 20, f"only {checked} uses found: is the extraction broken?"
    assert not missing, f"not in TensorRT {api['tensorrt_version']}: {missing}"


def test_the_name_check_catches_a_wrong_name(tmp_path):
    wrong = tmp_path / "wrong.py"
    wrong.write_text("import tensorrt as trt\nflag = trt.BuilderFlag.FP17\nok = hasattr(trt.BuilderFlag, 'FP18')\n")
    uses = tensorrt_uses(wrong)
    classes = json.loads(FIXTURE.read_text())["classes"]
    assert ("BuilderFlag", "FP17") in uses and ("BuilderFlag", "FP18") in uses
    assert "FP17" not in classes["BuilderFlag"] and "FP16" in classes["BuilderFlag"]


def test_fixture_is_what_the_installed_stubs_give():
    """The fixture is regenerated, not hand-edited: it equals what the script makes from the stubs."""
    assert json.loads(FIXTURE.read_text()) == api_names()


def test_mypy_with_the_stubs_rejects_a_wrong_tensorrt_call(tmp_path):
    """The proof that the package's mypy run (with the same stubs) really checks TensorRT calls."""
    pytest.importorskip("mypy")
    stubs = prepare_stubs(tmp_path / "stubs")
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import tensorrt as trt\n"
        "builder = trt.Builder(trt.Logger(trt.Logger.WARNING))\n"
        "config = builder.create_builder_config()\n"
        "config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)\n"  # right
        "config.set_memory_pool_limit(1 << 30)\n"  # wrong: missing the pool
        "network = builder.create_network(0)\n"
        "network.parse_onnx('model.onnx')\n"  # wrong: no such method
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy-cache"), str(sample)],
        cwd=tmp_path, env={**os.environ, "MYPYPATH": str(stubs)}, capture_output=True, text=True, check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert {line.split(":")[1] for line in errors} == {"5", "7"}, result.stdout
