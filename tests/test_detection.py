"""Torch-free detectors on real photos: RetinaFace (exported package) and YuNet (shipped package)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mfr.paths import bundled_weights, dataset_dir
from mfr.runtime.detection import Face, fit_longest_side, largest_face, nms
from mfr.runtime.detectors import shipped_yunet
from mfr.runtime.image_io import read_image_bgr
from mfr.runtime.package_detector import PackageDetector
from mfr.runtime.yunet import DEFAULT_MODEL


def demo(name: str) -> np.ndarray:
    return read_image_bgr(next(dataset_dir("demo").rglob(name)))


def test_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # box 3 (best) overlaps 0 (IoU .9) and 1 (IoU ~.67); box 2 is apart
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [3, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.95), [3, 0, 1, 2])


def test_fit_longest_side_scales_both_ways():
    image = np.zeros((160, 100, 3), np.uint8)
    assert fit_longest_side(image, 640, 320)[0].shape == (320, 200, 3)
    big, factor = fit_longest_side(np.zeros((1280, 900, 3), np.uint8), 640, 320)
    assert big.shape[0] == 640 and factor == 0.5
    assert fit_longest_side(image, 640)[1] == 1.0


def _check_faces(faces, expected: int) -> None:
    assert len(faces) == expected
    for face in faces:
        x1, y1, x2, y2 = face.box
        assert x1 < x2 and y1 < y2 and face.score > 0.5
        inside = (face.landmarks[:, 0] > x1) & (face.landmarks[:, 0] < x2) & (face.landmarks[:, 1] > y1) & (
            face.landmarks[:, 1] < y2)
        assert inside.all()
        left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # image-left first
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_retinaface_finds_real_faces_in_original_coordinates(retinaface_package):

    detector = PackageDetector(retinaface_package)
    image = demo("obama_and_biden.jpg")  # 2000x1428: downscaled for the network, mapped back
    faces = detector.detect(image)
    assert len(faces) >= 2
    _check_faces(faces[:2], 2)
    half = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    faces_half = detector.detect(half)
    # the same faces at half the size: the boxes halve (within a few pixels)
    for face in faces[:2]:
        nearest = min(faces_half, key=lambda f: np.abs(f.box * 2 - face.box).sum())
        np.testing.assert_allclose(nearest.box * 2, face.box, atol=0.03 * (face.box[2] - face.box[0]))
    assert detector.detect(np.full((240, 320, 3), 127, np.uint8)) == []


def test_retinaface_refuses_a_package_without_decoder(mobilefacenet_package):
    from mfr.errors import ManifestError

    with pytest.raises(ManifestError, match="no decoder section"):
        PackageDetector(mobilefacenet_package)


@pytest.mark.parametrize("name", ["obama.jpg", "obama_and_biden.jpg", "kit_with_rose.jpg"])
def test_yunet_decoding_matches_opencv_facedetectoryn(name):
    """OpenCV's FaceDetectorYN runs the same ONNX file with its own C++ decoder: ours must agree."""
    image = cv2.resize(demo(name), None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    ours = shipped_yunet(score_threshold=0.6, nms_threshold=0.3, max_side=10_000).detect(image)
    height, width = image.shape[:2]
    reference = cv2.FaceDetectorYN.create(str(bundled_weights("yunet", DEFAULT_MODEL)), "", (width, height),
                                          0.6, 0.3)
    _, rows = reference.detect(image)
    assert rows is not None and len(ours) == len(rows) > 0
    for face in ours:
        row = min(rows, key=lambda r: np.abs(r[:2] - face.box[:2]).sum())
        np.testing.assert_allclose(face.box, [row[0], row[1], row[0] + row[2], row[1] + row[3]], atol=0.5)
        np.testing.assert_allclose(face.landmarks, row[4:14].reshape(5, 2), atol=0.5)
        assert face.score == pytest.approx(float(row[14]), abs=1e-3)
    _check_faces(ours, len(rows))


def test_largest_face_picks_by_area_not_score_or_width():
    def face(box: list[float], score: float) -> Face:
        return Face(np.array(box, float), score, np.zeros((5, 2)))

    wide = face([0, 0, 100, 10], 0.99)  # 1,000 px², widest and best scored
    square = face([200, 200, 240, 240], 0.6)  # 1,600 px²: the largest
    inverted = face([50, 50, 0, 0], 0.9)  # a malformed box has no area
    assert largest_face([]) is None
    assert largest_face([wide, square, inverted]) is square
    assert square.area == 1600 and inverted.area == 0


def test_largest_face_on_a_photo_is_the_front_person():
    faces = shipped_yunet().detect(demo("obama_and_biden.jpg"))
    assert len(faces) >= 2
    widths = sorted(f.box[2] - f.box[0] for f in faces)
    chosen = largest_face(faces)
    assert chosen is not None and chosen.box[2] - chosen.box[0] == widths[-1]
