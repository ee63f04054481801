"""YuNet (libfacedetection) from the shipped ONNX file, run with ONNX Runtime; decoded in numpy.

A lighter second detector. Its outputs per stride s in (8, 16, 32) are cls, obj, bbox and kps for each
cell of the (H/s, W/s) grid, the input padded to a multiple of 32; the decoding follows the model's
published format (the same as OpenCV's ``FaceDetectorYN``, which the tests compare against).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from mfr.paths import bundled_weights
from mfr.runtime.detection import Face, fit_longest_side, select_faces

STRIDES = (8, 16, 32)
DEFAULT_MODEL = "yunet_n_dynamic.onnx"


class YuNetDetector:
    def __init__(self, model: Path | None = None, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 max_side: int = 640, min_side: int = 0, providers: list[str] | None = None) -> None:
        path = Path(model) if model is not None else bundled_weights("yunet", DEFAULT_MODEL)
        self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.max_side, self.min_side = max_side, min_side

    def detect(self, image: np.ndarray) -> list[Face]:
        resized, factor = fit_longest_side(image, self.max_side, self.min_side)
        height, width = resized.shape[:2]
        pad_h, pad_w = -(-height // 32) * 32, -(-width // 32) * 32
        padded = np.zeros((pad_h, pad_w, 3), np.float32)
        padded[:height, :width] = resized
        outputs = dict(zip(self.output_names,
                           self.session.run(None, {self.input_name: padded.transpose(2, 0, 1)[None]}), strict=True))
        boxes, scores, landmarks = [], [], []
        for stride in STRIDES:
            rows, cols = pad_h // stride, pad_w // stride
            row, col = np.divmod(np.arange(rows * cols), cols)
            cls = np.clip(outputs[f"cls_{stride}"][0, :, 0], 0, 1)
            obj = np.clip(outputs[f"obj_{stride}"][0, :, 0], 0, 1)
            bbox = outputs[f"bbox_{stride}"][0]
            kps = outputs[f"kps_{stride}"][0].reshape(-1, 5, 2)
            cx, cy = (col + bbox[:, 0]) * stride, (row + bbox[:, 1]) * stride
            w, h = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
            boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
            scores.append(np.sqrt(cls * obj))
            landmarks.append((kps + np.stack([col, row], axis=1)[:, None, :]) * stride)
        return select_faces(np.concatenate(boxes), np.concatenate(scores), np.concatenate(landmarks),
                            self.score_threshold, self.nms_threshold, factor)
