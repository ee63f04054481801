"""What a package exported from a training run records about it (``mfr.manifest.TrainingRecord``), read from
the run's ``train_log.json``, which every trainer writes with the same ``config``/``teacher``/``data`` parts."""

from __future__ import annotations

import json
from pathlib import Path

from mfr.errors import MfrError
from mfr.manifest import TrainingRecord
from mfr.training.run_dir import LOG_JSON


def training_record(out: Path, method: str) -> TrainingRecord:
    """The record of the run in ``out`` trained by ``method``. MaskInv's student always starts from the teacher."""
    path = Path(out) / LOG_JSON
    try:
        summary = json.loads(path.read_text())
        config, teacher, data = summary["config"], summary["teacher"], summary["data"]
        return TrainingRecord(
            method=method, init=config.get("init", "teacher"), teacher_model=teacher["model"],
            teacher_weights_sha256=teacher["weights_sha256"], data=data["source"], faces=int(data["faces"]),
            people=int(data["people"]), validation_share=float(config.get("validation_people", 0.0)),
            seconds=float(summary["seconds"]), log=str(path.resolve()),
            trained_people=[str(name) for name in data.get("people_names", [])])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MfrError(f"{path}: not a training log mfr train wrote ({exc})") from None
