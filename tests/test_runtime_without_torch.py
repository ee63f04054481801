"""The runtime must import and run where torch does not exist (a Jetson has no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from mfr.data.lfw import sample_images

BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is not installed on this device")

    sys.meta_path.insert(0, NoTorch())
    """
)


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)],
                          capture_output=True, text=True, check=False)


def test_the_torch_blocker_really_blocks():
    result = run_without_torch("import torch")
    assert result.returncode != 0 and "torch is not installed on this device" in result.stderr


def test_runtime_and_recognition_import_and_preprocess_without_torch():
    image = sample_images(1)[0]
    result = run_without_torch(
        f"""
        import sys, numpy as np
        import mfr.runtime, mfr.cli.main
        import mfr.recognition.enroll, mfr.recognition.gallery, mfr.recognition.portable
        import mfr.runtime.engine_triton, mfr.serving.serve, mfr.serving.python_model, mfr.cli.serve_cli
        from mfr.recognition.mask_state import MaskClassifier
        from mfr.registry import MODELS
        from mfr.runtime import read_image_bgr, normalize, align_faces
        spec = MODELS["mobilefacenet"].spec
        face = read_image_bgr({str(image)!r})
        crops = align_faces(face, [np.array(spec.template)], spec)
        batch = normalize(crops, spec)
        assert batch.shape == (1, 3, 112, 112), batch.shape
        assert MaskClassifier.load().predict(crops).shape == (1,)  # the camera-side classifier loads too
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_package_runs_end_to_end_without_torch(mobilefacenet_package):
    """Manifest -> spec -> CPU preprocessing -> ONNX Runtime, with torch unavailable."""
    images = [str(p) for p in sample_images(4)]
    result = run_without_torch(
        f"""
        import json, numpy as np, onnxruntime as ort
        from mfr.manifest import load_manifest
        from mfr.runtime import read_image_bgr, normalize
        manifest = load_manifest({str(mobilefacenet_package)!r})
        batch = normalize([read_image_bgr(p) for p in {images!r}], manifest.spec)
        session = ort.InferenceSession({str(mobilefacenet_package / "model.onnx")!r},
                                       providers=["CPUExecutionProvider"])
        out = session.run(None, {{manifest.inputs[0].name: batch}})[0]
        print(json.dumps(list(out.shape)))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [4, 128]


def test_engines_build_load_and_embed_without_torch(mobilefacenet_package, tmp_path):
    """build-engine (ONNX Runtime) and the engine runtime run on a device without torch, so
    --rebuild-on-mismatch works there too."""
    images = [str(p) for p in sample_images(4)]
    out = tmp_path / "engine"
    result = run_without_torch(
        f"""
        import json, sys
        from pathlib import Path
        from mfr.export.engine_package import EngineBuilder
        from mfr.runtime.embedder import FaceEmbedder
        from mfr.runtime import read_image_bgr
        import numpy as np
        EngineBuilder(package=Path({str(mobilefacenet_package)!r}), out=Path({str(out)!r}),
                      backend="onnxruntime")(log=lambda _: None)
        embedder = FaceEmbedder.open(Path({str(out)!r}))
        crops = np.stack([read_image_bgr(p) for p in {images!r}])
        embeddings = embedder.embed_crops(crops, flip=True)
        assert "torch" not in sys.modules
        print(json.dumps([list(embeddings.shape), embedder.engine.backend]))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[4, 128], "onnxruntime"]
