"""What ``mfr report`` was given: each file recognised by what it holds, not by its name.

The commands' JSON carries no kind field, so each kind is recognised by the keys only it has (``KINDS``,
checked in order); a package's ``manifest.json`` contributes its calibration record; a ``.jsonl`` file is
an ``mfr watch --events`` log. A file of none of these kinds is listed as not shown, never an error: the
docs' figure folder holds kinds the report has no section for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfr.errors import DataError


def _runs_with(key: str) -> Callable[[dict[str, Any]], bool]:
    return lambda d: isinstance(d.get("runs"), list) and bool(d["runs"]) and key in d["runs"][0]


# kind -> test on a JSON object; the first that matches names the file's kind
KINDS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "drop": lambda d: {"fp32", "int8", "drop"} <= d.keys(),
    "eval": lambda d: "protocols" in d and "precision" in d,
    "calibration": lambda d: "onnxruntime" in d and "ranges" in d,
    "manifest": lambda d: "format_version" in d and "stages" in d,
    "latency": lambda d: isinstance(d.get("results"), list) and bool(d["results"])
    and {"engine", "batch", "p50_ms"} <= d["results"][0].keys(),
    "pipeline": _runs_with("frames_per_second"),
    "cameras": _runs_with("max_cameras"),
    "watch_bench": _runs_with("score"),
    "gallery": lambda d: isinstance(d.get("rows"), list) and bool(d["rows"]) and "recall_at_1" in d["rows"][0],
    "watch_stats": lambda d: "frames" in d and "latency" in d and "runs" not in d,
}


@dataclass
class ReportInputs:
    by_kind: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    events: list[tuple[Path, list[dict[str, Any]]]] = field(default_factory=list)  # watch --events logs
    not_shown: list[str] = field(default_factory=list)  # files of no kind the report shows

    def of(self, kind: str) -> list[dict[str, Any]]:
        return self.by_kind.get(kind, [])


def read_inputs(paths: list[Path]) -> ReportInputs:
    """Read and sort every file; a file that cannot be read or parsed is a ``DataError`` naming it."""
    inputs = ReportInputs()
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read ({exc})") from None
        if Path(path).suffix == ".jsonl":
            inputs.events.append((Path(path), _events(text, Path(path))))
            continue
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise DataError(f"{path}: not JSON ({exc})") from None
        kind = next((k for k, test in KINDS.items() if isinstance(data, dict) and test(data)), None)
        if kind == "manifest":
            record = data["stages"].get("calibration") if isinstance(data["stages"], dict) else None
            if not isinstance(record, dict) or "onnxruntime" not in record:
                inputs.not_shown.append(f"{path} (a package without a calibration record)")
                continue
            kind, data = "calibration", {**record, "model": data.get("model", record.get("model"))}
        if kind is None:
            inputs.not_shown.append(f"{path} (not an output the report has a section for)")
            continue
        inputs.by_kind.setdefault(kind, []).append({**data, "_file": str(path)})
    return inputs


def _events(text: str, path: Path) -> list[dict[str, Any]]:
    events = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}:{number}: not a JSON event") from None
        if isinstance(event, dict) and "kind" in event:
            events.append(event)
    return events
