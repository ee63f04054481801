"""YuNet's decoder (libfacedetection): per stride s, cls, obj, bbox and kps for each cell of the
(H/s, W/s) grid of an input padded to a multiple of the largest stride.

The decoding follows the model's published format, the same as OpenCV's ``FaceDetectorYN`` (which the
tests compare against). The shipped model is a package of its own (``mfr.paths.bundled_weights("yunet")``:
the ONNX file and its manifest), so YuNet runs through the engine interface like every other model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mfr.runtime.detection import padded_size

DEFAULT_MODEL = "yunet_n_dynamic.onnx"


@dataclass(frozen=True)
class YuNetHead:
    strides: tuple[int, ...] = (8, 16, 32)

    @classmethod
    def from_decoder(cls, decoder: dict[str, Any]) -> YuNetHead:
        return cls(tuple(int(s) for s in decoder["strides"]))

    @property
    def pad_multiple(self) -> int:
        return max(self.strides)

    def decode(self, outputs: dict[str, np.ndarray], height: int,
               width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pad_h, pad_w = padded_size(height, width, self.pad_multiple)
        boxes, scores, landmarks = [], [], []
        for stride in self.strides:
            rows, cols = pad_h // stride, pad_w // stride
            row, col = np.divmod(np.arange(rows * cols), cols)
            cls = np.clip(outputs[f"cls_{stride}"][:, 0], 0, 1)
            obj = np.clip(outputs[f"obj_{stride}"][:, 0], 0, 1)
            bbox = outputs[f"bbox_{stride}"]
            kps = outputs[f"kps_{stride}"].reshape(-1, 5, 2)
            cx, cy = (col + bbox[:, 0]) * stride, (row + bbox[:, 1]) * stride
            w, h = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
            boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
            scores.append(np.sqrt(cls * obj))
            landmarks.append((kps + np.stack([col, row], axis=1)[:, None, :]) * stride)
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(landmarks)
