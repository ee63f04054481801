"""What every trainer does with its output directory: refuse to overwrite a run, resume one, and write
checkpoints and logs so that a killed run loses at most its current epoch.

A checkpoint (``STATE_NAME``) carries the options that shape the result (``config_fingerprint``); a
resumed run must have the same ones, or it would silently continue a different experiment. Every file
is written to a temporary name and renamed (``mfr.atomic``), so a kill leaves the previous checkpoint.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mfr.atomic import atomic_file
from mfr.errors import MfrError

STATE_NAME = "train_state.pt"
# every trainer's log: per-step rows (CSV) and the run's summary, whose config/teacher/data parts a package
# exported from the run records (``mfr.training.record``)
LOG_CSV, LOG_JSON = "train_log.csv", "train_log.json"
# options that change how a run is carried out, not what it computes: a resumed run may change them
RUN_ONLY_OPTIONS = frozenset({"out", "resume", "force", "threads", "workers", "device", "log_every", "max_steps"})


def prepare_out_dir(out: Path, resume: bool, force: bool, outputs: Iterable[str]) -> None:
    """Check ``out`` for a new run (empty, or ``force``: its ``outputs`` are removed) or for ``resume``."""
    if out.exists() and not out.is_dir():
        raise MfrError(f"output path {out} exists and is not a directory")
    if resume:
        if not (out / STATE_NAME).is_file():
            raise MfrError(f"--resume: {out / STATE_NAME} not found (nothing to resume)")
        return
    if out.is_dir() and any(out.iterdir()) and not force:
        raise MfrError(f"output directory {out} exists and is not empty; pass --resume to continue its "
                       f"training or --force to start again")
    out.mkdir(parents=True, exist_ok=True)
    for name in (STATE_NAME, *outputs):
        (out / name).unlink(missing_ok=True)


def config_fingerprint(config: Any, also_skip: Iterable[str] = ()) -> dict[str, Any]:
    """The options of a dataclass ``config`` a resumed run must share with the run it continues."""
    skip = RUN_ONLY_OPTIONS | set(also_skip)
    return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
            for k, v in asdict(config).items() if k not in skip}


def diff(before: dict[str, Any], now: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(before) | set(now))
                     if before.get(k) != now.get(k))


def save_atomic(obj: Any, path: Path) -> None:
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def save_weights(module: nn.Module, path: Path, **extra: Any) -> None:
    """``module``'s state dict on the CPU (plus ``extra`` entries), written atomically: what a trainer keeps."""
    save_atomic({k: v.detach().cpu() for k, v in module.state_dict().items()} | extra, path)


def load_state(out: Path, fingerprint: dict[str, Any], device: str) -> dict[str, Any]:
    """The checkpoint in ``out``, refused when it was written with other options than ``fingerprint``."""
    state: dict[str, Any] = torch.load(out / STATE_NAME, map_location=device, weights_only=True)
    if state.get("config") != fingerprint:
        raise MfrError(f"{out / STATE_NAME} was written with other training options; resume with the same "
                       f"options (differences: {diff(state.get('config', {}), fingerprint)})")
    return state


def write_log_csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    """``rows`` as CSV with the columns ``fields`` (a row without a column leaves it empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_file(path) as tmp:
        tmp.write_text(buffer.getvalue())


def freeze_batchnorm(model: nn.Module) -> None:
    """Batch-norm layers of ``model`` use and keep their running statistics (eval mode)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def config_summary(config: Any) -> dict[str, Any]:
    """A dataclass ``config`` as JSON-ready values, for a run's log."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}


def save_figure(figure: Any, path: Path) -> None:
    """A matplotlib figure as a PNG (laid out tight, 100 dpi), written atomically, then closed."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
