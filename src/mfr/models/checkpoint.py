"""Loading checkpoints safely and strictly, with errors a user can act on.

``torch.load(..., weights_only=True)`` refuses pickles that would run arbitrary code; we report that
as a refusal rather than offering to unpickle. Key mismatches are listed (missing, unexpected, wrong
shape), because "Error(s) in loading state_dict" with 300 keys is not an error message.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from mfr.errors import CheckpointError
from mfr.manifest import TrainingRecord

if TYPE_CHECKING:
    from mfr.registry import ModelEntry

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_SHOWN = 8


def read_state_dict(path: Path, strip_prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Read a state_dict from ``path`` without unsafe unpickling.

    Accepts a plain state_dict or one wrapped under a usual key (``state_dict``, ``model``), and
    removes ``strip_prefix`` (DataParallel's ``module.``) from every key.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            found = re.search(r"Unsupported global: (GLOBAL [\w.]+)", str(exc))
            what = found.group(1) if found else "objects other than tensors and containers"
            raise CheckpointError(
                f"{path}: refusing to load, the checkpoint needs unsafe unpickling ({what}). "
                "Re-save it as a plain state_dict: torch.save(model.state_dict(), path)"
            ) from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({exc})") from None
    except Exception as exc:  # torch raises KeyError/RuntimeError/EOFError for non-checkpoints
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    state = _unwrap(loaded, path)
    return {key.removeprefix(strip_prefix) if strip_prefix else key: value for key, value in state.items()}


def _unwrap(loaded: object, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(loaded, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise CheckpointError(f"{path}: expected a state_dict (name -> tensor), got {type(loaded).__name__}")
    not_tensors = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: expected a state_dict, but entries {not_tensors[:_SHOWN]} are not tensors")
    return loaded


def read_openvino_ir(path: Path, model: nn.Module, strip_prefix: str) -> dict[str, torch.Tensor]:
    """An OpenVINO IR's weights as ``model``'s state dict (``mfr.models.openvino_ir``)."""
    from mfr.models.openvino_ir import ir_state_dict, read_ir

    return ir_state_dict(model, read_ir(path), getattr(model, "ir_buffer_roles", {}))


def read_torch_checkpoint(path: Path, model: nn.Module, strip_prefix: str) -> dict[str, torch.Tensor]:
    return read_state_dict(path, strip_prefix)


def weights_sha256(path: Path) -> dict[str, str]:
    """The sha256 of every file a weights path stands for, keyed as a manifest records them: ``weights``, and
    ``weights_bin`` for an OpenVINO IR's ``.bin`` beside its ``.xml``."""
    from mfr.atomic import sha256_file

    path = Path(path)
    hashes = {"weights": sha256_file(path)}
    if path.suffix in WEIGHT_READERS and path.with_suffix(".bin").is_file():
        hashes["weights_bin"] = sha256_file(path.with_suffix(".bin"))
    return hashes


def shipped_weights(entry: ModelEntry) -> Path | None:
    """A registry entry's shipped weights (None: it ships none), refused when the file is not the one recorded
    (``entry.weights_sha256``): a damaged or replaced file would otherwise export silently as the model."""
    if entry.default_weights is None:
        return None
    path = Path(entry.default_weights)
    if not path.is_file():
        raise CheckpointError(f"{entry.name}: shipped weights {path} not found (a damaged installation?)")
    if entry.weights_sha256 is not None:
        found = weights_sha256(path)["weights"]
        if found != entry.weights_sha256:
            raise CheckpointError(f"{entry.name}: shipped weights {path} have sha256 {found}, not the recorded "
                                  f"{entry.weights_sha256}; reinstall mfr")
    return path


def shipped_training(entry: ModelEntry) -> TrainingRecord | None:
    """How mfr trained a registry entry's shipped weights (``entry.training_record``; None: not recorded), for
    the manifest of a package exported from them: its training people travel with it."""
    if entry.training_record is None:
        return None
    path = Path(entry.training_record)
    try:
        return TrainingRecord.from_dict(json.loads(path.read_text()), str(path))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{entry.name}: its training record {path} cannot be read ({exc}); "
                              "reinstall mfr") from None


# How a weights file becomes a state dict, by its suffix; any other file is read as a torch checkpoint.
WEIGHT_READERS: dict[str, Callable[[Path, nn.Module, str], dict[str, torch.Tensor]]] = {".xml": read_openvino_ir}


def load_weights(model: nn.Module, path: Path, architecture: str, strip_prefix: str = "module.") -> nn.Module:
    """Load ``path`` into ``model`` with strict key and shape checking; return the model in eval mode."""
    path = Path(path)
    state = WEIGHT_READERS.get(path.suffix, read_torch_checkpoint)(path, model, strip_prefix)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        parts = [
            f"{label} ({len(items)}): {', '.join(items[:_SHOWN])}{' ...' if len(items) > _SHOWN else ''}"
            for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                 ("shape mismatches", wrong_shape))
            if items
        ]
        raise CheckpointError(f"{path} does not match architecture {architecture}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model.eval()
