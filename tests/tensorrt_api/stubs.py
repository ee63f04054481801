"""TensorRT's Python API as seen by ``tensorrt-stubs`` (PyPI), without TensorRT.

``tensorrt-stubs`` 10.13.0.35.1 holds .pyi files generated from the real TensorRT 10.13 bindings
(docstrings included). Two things keep them from being used as they are: the package has no
``py.typed`` marker (so mypy skips it in site-packages) and a few generated signatures are not valid
Python (a parameter named ``in``; a parameter without default after defaulted ones). ``prepare_stubs``
copies them into a folder for ``MYPYPATH`` with exactly those two repairs; ``api_names`` lists every
module-level name and class member, which is what ``api.json`` stores.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

DISTRIBUTION = "tensorrt-stubs"
INSTALL_HINT = "pip install --no-deps -r constraints/no-deps.txt"
REPAIRS = [
    (re.compile(r"([(,] ?)in: "), r"\1in_: "),  # `in` is a keyword
    (re.compile(r"power: Weights = None, channel_axis: int\)"), "power: Weights = None, channel_axis: int = ...)"),
]


def stub_files() -> dict[str, Path]:
    """Installed stub files by their path in the distribution (e.g. 'tensorrt_bindings/tensorrt.pyi')."""
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"{DISTRIBUTION} is not installed: {INSTALL_HINT}") from None
    return {str(f): Path(str(f.locate())) for f in files if str(f).endswith(".pyi")}


def stubs_version() -> str:
    return importlib.metadata.version(DISTRIBUTION)


def repaired(text: str) -> str:
    for pattern, replacement in REPAIRS:
        text = pattern.sub(replacement, text)
    return text


def prepare_stubs(destination: Path) -> Path:
    """Copy the repaired stubs under ``destination`` (a folder to put on MYPYPATH) and return it."""
    for relative, source in stub_files().items():
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(repaired(source.read_text()))
    return destination


def class_members(tree: ast.Module) -> dict[str, set[str]]:
    """Members of every class, inherited ones from classes of the same file included."""
    own: dict[str, set[str]] = {}
    bases: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
            own[node.name] = names
            bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]

    def resolve(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        members = set(own.get(name, set()))
        for base in bases.get(name, []):
            if base in own and base not in seen:
                members |= resolve(base, seen | {name})
        return members

    return {name: resolve(name) for name in own}


def module_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def api_names() -> dict[str, object]:
    """The fixture's content: what ``import tensorrt as trt`` offers as ``trt.X`` and ``trt.X.y``."""
    files = stub_files()
    package = ast.parse(repaired(files["tensorrt/__init__.pyi"].read_text()))
    bindings = ast.parse(repaired(files["tensorrt_bindings/tensorrt.pyi"].read_text()))
    classes = class_members(bindings)
    return {
        "tensorrt_version": next(n.value.value for n in package.body  # type: ignore[union-attr]
                                 if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "__version__"),
        "made_from": f"{DISTRIBUTION}=={stubs_version()} (PyPI; .pyi generated from the TensorRT bindings)",
        "made_by": "python -m tests.tensorrt_api.stubs > tests/tensorrt_api/api.json",
        "module": sorted(module_names(package) | module_names(bindings)),
        "classes": {name: sorted(members) for name, members in sorted(classes.items())},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(api_names(), indent=0, sort_keys=False))
