"""``mfr doctor`` on this machine: the checks it can run pass, the others say why they could not run."""

from __future__ import annotations

import json

import onnxruntime as ort
from click.testing import CliRunner

from mfr.cli.main import cli
from mfr.runtime.machine import gpu_info, tensorrt_version


def test_doctor_builds_what_it_can_and_names_what_it_could_not(calibrated, retinaface_package, tmp_path):
    out = tmp_path / "doctor.json"
    result = CliRunner().invoke(cli, ["doctor", "--package", str(calibrated[0]), "--detector-package",
                                      str(retinaface_package), "--work", str(tmp_path / "engines"), "--json",
                                      str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["versions"]["onnxruntime"] == ort.__version__
    checks = {check["name"]: check for check in report["checks"]}
    # ONNX Runtime engines build everywhere; each was verified on real data and timed
    for name in ("mobilefacenet fp32 onnxruntime", "mobilefacenet int8 onnxruntime",
                 "retinaface-mnet025 fp32 onnxruntime"):
        assert checks[name]["status"] == "ok", checks[name]
        assert "min cosine" in checks[name]["detail"] and checks[name]["latency_ms"] > 0
    assert "vs the FP32 model on this CPU" in checks["mobilefacenet int8 onnxruntime"]["detail"]
    assert (tmp_path / "engines" / "recognition-onnxruntime-int8" / "manifest.json").is_file()
    has_tensorrt = tensorrt_version() is not None and gpu_info() is not None
    for name in ("mobilefacenet fp32 tensorrt", "mobilefacenet int8 tensorrt", "retinaface-mnet025 fp32 tensorrt"):
        expected = "ok" if has_tensorrt else "not checked"
        assert checks[name]["status"] == expected, checks[name]
    kernel = checks["CUDA preprocessing kernel vs CPU"]
    assert kernel["status"] == ("ok" if gpu_info() is not None else "not checked"), kernel
    assert "| check | result |" in result.output
    if not has_tensorrt:
        assert any("TensorRT" in hint for hint in report["missing"])
