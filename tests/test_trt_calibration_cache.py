"""TensorRT's calibration cache format, checked against caches TensorRT itself wrote.

The samples below are the first lines of calibration caches written by TensorRT and published in public
repositories (file ``calibration.cache`` at the commit given):
- Data-Prodigy/cpp_chicken_tracking @ 693cc1951dc71b5157dbf8e5c5da94ea98112ba9 (TensorRT 10.3, JetPack 6)
- dnth/DEIMKit @ e72c4ccc0dc8a7994ee417fd20126957006b600e (TensorRT 10.9)
- Hanner123/LLM_PIPELINE @ 5cbe2ba6d8b616a31d0205c0e3d9ba96152edd1f (TensorRT 10.10)
- isaid22/TensorRT-Optimization-MPNet @ a0c04d9eb7a8f41dba1ede4ce7e1d3f5a299b8d8 (TensorRT 10.13, MinMax)
- zxm97/Pytorch_Retina_License_Plate_trt @ ecdd6e81ce075293e1383c3491f46ea995536664 (TensorRT 8.5)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mfr.errors import DataError
from mfr.trt_calibration_cache import (
    for_tensorrt,
    header,
    read_calibration_cache,
    scale_to_hex,
    split_cache,
    version_code,
    write_calibration_cache,
)

WRITTEN_BY_TENSORRT = {
    "10.3.0": "TRT-100300-EntropyCalibration2\nimages: 3c008912\n/model.0/conv/Conv_output_0: 3e6c71c3\n"
              "/model.0/act/Sigmoid_output_0: 3c010a14\n",
    "10.9.0": "TRT-100900-EntropyCalibration2\nimages: 3c021406\n/model/decoder/decoder/Add_59_output_0: 3c08fb09\n"
              "ONNXTRT_Broadcast_1855_output: 0\n",
    "10.10.0": "TRT-101000-EntropyCalibration2\n/bert/encoder/layer.1/attention/self/Div_output_0: 3a810a14\n"
               "/bert/encoder/layer.0/attention/self/Add_output_0: 7f800000\n",
    "10.13.3": "TRT-101303-MinMaxCalibration\n/Cast_output_0: 3c010204\n/Sub_output_0: 0\n",
    "8.5.1": "TRT-8501-EntropyCalibration2\ninput: 3f9234fa\n"
             "/body/stage1/stage1.0/stage1.0.0/Conv_output_0: 3daa1aed\n",
}


@pytest.mark.parametrize("version", sorted(WRITTEN_BY_TENSORRT))
def test_header_and_lines_are_the_ones_tensorrt_writes(tmp_path, version):
    text = WRITTEN_BY_TENSORRT[version]
    path = tmp_path / "calibration.cache"
    path.write_text(text)
    first, scales = split_cache(path)
    assert first == header(version, first.split("-", 2)[2])  # TRT-<NV_TENSORRT_VERSION>-<algorithm>
    for line in text.splitlines()[1:]:  # every scale reads back to the same hex TensorRT wrote
        name, value = line.rsplit(": ", 1)
        assert scale_to_hex(scales[name]) == value
    assert for_tensorrt(path, version).decode() == text  # replayed unchanged to the TensorRT that wrote it


def test_version_codes_follow_nv_tensorrt_version():
    assert [version_code(v) for v in ("8.6.1.6", "10.3.0.30", "10.13.3.9", "11.0.0")] == [
        "8601", "100300", "101303", "110000"]
    with pytest.raises(DataError, match="not a TensorRT version"):
        version_code("ten")


def test_calibrate_cache_is_replayed_under_the_installed_tensorrts_header(tmp_path):
    path = tmp_path / "calibration.cache"
    write_calibration_cache({"input": (-1.0, 1.0), "conv_out": (0.0, 6.35)}, path)
    assert path.read_text().splitlines()[0] == "TRT-8601-EntropyCalibration2"
    replay = for_tensorrt(path, "10.3.0.30").decode().splitlines()
    assert replay[0] == "TRT-100300-EntropyCalibration2"  # JetPack 6's TensorRT
    assert replay[1:] == path.read_text().splitlines()[1:]
    assert read_calibration_cache(path)["conv_out"] == pytest.approx(6.35 / 127, rel=1e-6)


@pytest.mark.parametrize("text, problem", [("", "not a TensorRT calibration cache"),
                                           ("hello\n", "not a TensorRT calibration cache"),
                                           ("TRT-8601-EntropyCalibration2\nx 3c\n", ":2: expected"),
                                           ("TRT-8601-EntropyCalibration2\nx: zz\n", ":2: expected")])
def test_a_broken_cache_is_refused_with_its_file_and_line(tmp_path, text, problem):
    path = Path(tmp_path / "calibration.cache")
    path.write_text(text)
    with pytest.raises(DataError, match=problem):
        read_calibration_cache(path)
