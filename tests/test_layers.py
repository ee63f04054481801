"""Imports run one way: the common ground imports no stage, and a stage imports only the ground and the
stages below it.

The order, lowest first (``LAYERS``), folders of ``src/mfr/``: the torch-free common ground (the package's
own modules, ``data/``, ``augment/``: spec, manifest, registry, data, augment, metrics, errors),
``runtime/`` (per-frame primitives, torch-free), ``serving/`` (the runtime's engines behind Triton,
torch-free), ``recognition/`` (gallery and decisions, torch-free, on the runtime), ``models/`` (the torch
networks: nothing below may import them, so what runs on a device never needs torch), ``export/`` (may
check what it builds through the runtime), ``calibration/``, ``benchmarks/``, ``training/``, and ``cli/``,
the one place that may call every stage. Every import statement of every module is checked, those inside
functions included, since a lazy import is an arrow all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
LAYERS = ("ground", "runtime", "serving", "recognition", "models", "export", "calibration", "benchmarks", "training",
          "cli")
STAGES = {f"mfr.{layer}": layer for layer in LAYERS if layer != "ground"}


def layer_of(module: str) -> str | None:
    """The layer of an ``mfr`` module name (None for third-party modules)."""
    if module != "mfr" and not module.startswith("mfr."):
        return None
    for prefix, layer in STAGES.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return "ground"


def source_modules() -> dict[str, Path]:
    """Module name -> file, for every Python file the package installs (``src/``: folders are import paths)."""
    modules = {}
    for path in sorted((SOURCE / "mfr").rglob("*.py")):
        parts = [part for part in path.relative_to(SOURCE).with_suffix("").parts if part != "__init__"]
        modules[".".join(parts)] = path
    return modules


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) for every import in ``source``, at any depth, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            # "from mfr import metrics" imports the module mfr.metrics
            found += [(node.lineno, f"{base}.{alias.name}" if base == "mfr" else base) for alias in node.names]
    return found


def arrows_against_the_order(module: str, source: str, is_package: bool = False) -> list[str]:
    own = layer_of(module)
    assert own is not None
    wrong = []
    for line, target in imported_modules(source, module, is_package):
        layer = layer_of(target)
        if layer is not None and LAYERS.index(layer) > LAYERS.index(own):
            wrong.append(f"{module}:{line} ({own}) imports {target} ({layer})")
    return wrong


def test_every_installed_module_is_seen():
    modules = source_modules()
    assert {"mfr.manifest", "mfr.metrics", "mfr.runtime.engine_load", "mfr.recognition.gallery",
            "mfr.export.engine_package",
            "mfr.calibration.package", "mfr.benchmarks.verification", "mfr.training.maskinv",
            "mfr.cli.main"} <= set(modules)
    assert {layer_of(name) for name in modules} == set(LAYERS)


def test_no_import_runs_against_the_stage_order():
    wrong = []
    for module, path in source_modules().items():
        wrong += arrows_against_the_order(module, path.read_text(), path.name == "__init__.py")
    assert wrong == []


@pytest.mark.parametrize("module, source, expected", [
    ("mfr.runtime.engine_load", "def f():\n    from mfr.export.engine_package import EngineBuilder\n",
     "mfr.runtime.engine_load:2 (runtime) imports mfr.export.engine_package (export)"),
    ("mfr.data.lfw", "import mfr.runtime.preprocess\n", "(ground) imports mfr.runtime.preprocess (runtime)"),
    ("mfr.calibration.package", "from mfr.benchmarks import verification\n",
     "(calibration) imports mfr.benchmarks (benchmarks)"),
    ("mfr.runtime.embedder", "from ..export import real_inputs\n", "imports mfr.export (export)"),
    ("mfr.recognition.watch", "import mfr.models.mobilefacenet\n",
     "(recognition) imports mfr.models.mobilefacenet (models)"),
    ("mfr.data.lfw", "from mfr.models import split\n", "(ground) imports mfr.models (models)"),
])
def test_the_check_catches_arrows_against_the_order(module, source, expected):
    wrong = arrows_against_the_order(module, source)
    assert len(wrong) == 1 and expected in wrong[0]


def test_the_check_allows_arrows_down_the_order():
    source = ("import numpy\nfrom mfr.manifest import Manifest\nfrom mfr import metrics\ndef f():\n"
              "    from mfr.runtime.engine import Engine\n    from mfr.export.real_inputs import sample_faces\n")
    assert arrows_against_the_order("mfr.calibration.package", source) == []
    assert arrows_against_the_order("mfr.cli.main", "from mfr.training.maskinv import MaskInvTrainer\n") == []
