"""A MEER package's restoring decoder as an ONNX model of its own (``restore.onnx``): an aligned face crop
-> the unmasked face the model imagines, in the model's input space.

It is the deployed trunk and decoupling module followed by the decoder MEER trained to restore the
face from the identity features; it sits beside the recognition model in the package, listed in the
manifest with its hash and parity, so ``mfr restore`` runs it with ONNX Runtime, without torch. It is a
picture for a person to look at and is never used to recognise anyone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mfr.atomic import atomic_file, sha256_file
from mfr.errors import CheckpointError, MfrError, ParityError
from mfr.export.onnx_export import DEFAULT_OPSET, torch_to_onnx
from mfr.export.package import MIN_PARITY_COSINE
from mfr.export.parity import measure_parity, parity_batches
from mfr.manifest import Manifest, load_manifest
from mfr.models.checkpoint import load_weights
from mfr.models.meer import MEERNet, MEERRestorer
from mfr.registry import get_model_entry
from mfr.runtime.restore import RESTORE_KEY

RESTORE_NAME = "restore.onnx"
RESTORE_OUTPUT = "restored"


class RestoreGraph(nn.Module):
    """Face crop -> restored face: the recognition network's identity features through the decoder."""

    def __init__(self, net: MEERNet, restorer: MEERRestorer) -> None:
        super().__init__()
        self.net, self.restorer = net, restorer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restorer(self.net.parts(x).identity)


def add_restorer(package: Path, restorer_weights: Path, log: Callable[[str], None] = print,
                 parity_samples: int = 16) -> Manifest:
    """Write ``restore.onnx`` into the MEER ``package`` (exported from the student the decoder was trained
    with) and list it in the manifest; refused unless it matches torch (cosine >= MIN_PARITY_COSINE)."""
    package = Path(package)
    manifest = load_manifest(package)
    entry = get_model_entry(manifest.model)
    net = entry.build()
    if not isinstance(net, MEERNet):
        raise MfrError(f"{package} holds a {manifest.model} model; only MEER packages have a restoring decoder")
    weights = manifest.export_weights()
    if weights is None or not weights.is_file():
        raise CheckpointError(f"{package}: the student checkpoint it was exported from ({weights}) is not there")
    load_weights(net, weights, entry.name, entry.strip_prefix)  # into ``net``, strictly, in eval mode
    restorer = MEERRestorer(net.channels, net.stride)
    try:
        restorer.load_state_dict(torch.load(restorer_weights, map_location="cpu", weights_only=True), strict=True)
    except (OSError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{restorer_weights}: not a MEER restoring decoder ({exc})") from None
    graph = RestoreGraph(net, restorer).eval()
    restore_entry = dataclasses.replace(entry, output_names=(RESTORE_OUTPUT,))
    batches, data = parity_batches(entry, parity_samples)
    with atomic_file(package / RESTORE_NAME, suffix=".onnx") as tmp:
        log(f"exporting the restoring decoder to {package / RESTORE_NAME}")
        torch_to_onnx(graph, restore_entry, tmp, manifest.opset or DEFAULT_OPSET)
        report = measure_parity(graph, tmp, batches, (RESTORE_OUTPUT,), data)
        if report.min_cosine < MIN_PARITY_COSINE:
            raise ParityError(f"{package / RESTORE_NAME}: parity with torch failed, min cosine "
                              f"{report.min_cosine:.6f} < {MIN_PARITY_COSINE} on {data}; not written")
    manifest.files[RESTORE_KEY] = RESTORE_NAME
    manifest.sha256[RESTORE_KEY] = sha256_file(package / RESTORE_NAME)
    manifest.save(package)
    return manifest
