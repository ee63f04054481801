"""A model shipped inside mfr as a package already (YuNet: its ONNX file and manifest): copied out, every
file checked against the manifest's sha256, so it can be calibrated and built like an exported one."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from mfr.atomic import check_output_dir, sha256_file, staged_output_dir
from mfr.errors import ManifestError
from mfr.manifest import Manifest, listed_file, load_manifest


def copy_package(source: Path, out: Path, force: bool, log: Callable[[str], None]) -> Manifest:
    manifest = load_manifest(source)
    check_output_dir(Path(out), force)
    with staged_output_dir(Path(out), force) as stage:
        for key, name in manifest.files.items():
            path = listed_file(source, manifest, key, f"{source} lists {name}, which is missing")
            if key in manifest.sha256 and sha256_file(path) != manifest.sha256[key]:
                raise ManifestError(f"{path}: sha256 differs from its manifest's; the installed mfr is damaged")
            shutil.copy(path, stage / name)
        manifest.save(stage)
    log(f"wrote {out}: {manifest.model} ({', '.join(manifest.files.values())})")
    return manifest
