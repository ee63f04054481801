"""CPU preprocessing: Umeyama alignment and spec-driven normalisation, checked against hand values."""

import numpy as np
import pytest

from mfr.registry import MODELS
from mfr.runtime import align_faces, estimate_similarity, normalize, umeyama
from mfr.spec import ARCFACE_TEMPLATE_112, PreprocessSpec

MFN = MODELS["mobilefacenet"].spec


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("angle, scale, tx, ty", [(0.0, 1.0, 0, 0), (0.3, 2.5, 40, -7), (-1.2, 0.4, 300, 120)])
def test_umeyama_recovers_an_exact_similarity(angle, scale, tx, ty):
    template = np.array(ARCFACE_TEMPLATE_112)
    truth = _similarity(angle, scale, tx, ty)
    frame_points = _apply(truth, template)
    # frame -> template is the inverse of truth
    recovered = umeyama(frame_points, template)
    np.testing.assert_allclose(_apply(recovered, frame_points), template, atol=1e-9)


def test_umeyama_is_the_least_squares_fit_under_noise():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    dst = _apply(_similarity(0.2, 1.3, 5, 9), src) + rng.normal(0, 0.5, (5, 2))
    best = umeyama(src, dst)
    residual = ((_apply(best, src) - dst) ** 2).sum()
    for _ in range(50):  # no nearby similarity does better
        a, s, x, y = rng.normal(0, [0.01, 0.01, 0.2, 0.2])
        scale = np.hypot(*best[:, 0]) * (1 + s)
        angle = np.arctan2(best[1, 0], best[0, 0]) + a
        other = _similarity(angle, scale, best[0, 2] + x, best[1, 2] + y)
        assert ((_apply(other, src) - dst) ** 2).sum() >= residual - 1e-9


def test_umeyama_does_not_reflect():
    template = np.array(ARCFACE_TEMPLATE_112)
    mirrored = template * [-1, 1]
    matrix = umeyama(mirrored, template)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_estimate_similarity_rejects_wrong_landmarks():
    with pytest.raises(ValueError, match="5 finite"):
        estimate_similarity(np.zeros((4, 2)), MFN)
    with pytest.raises(ValueError, match="5 finite"):
        estimate_similarity(np.full((5, 2), np.nan), MFN)


def _random_faces(count: int, seed: int = 0) -> np.ndarray:
    """Landmark sets as detectors give them: the template rotated, scaled, moved and jittered."""
    rng = np.random.default_rng(seed)
    template = np.array(ARCFACE_TEMPLATE_112)
    angles = rng.uniform(-np.pi, np.pi, count)
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)], 1).reshape(count, 2, 2)
    faces = template * rng.uniform(0.3, 6, (count, 1, 1)) + rng.normal(0, 4, (count, 5, 2))
    return np.matmul(faces, rotations) + rng.uniform(0, 1500, (count, 1, 2))


def test_faces_fitted_together_get_the_matrix_each_gets_alone():
    """The camera loop and the GPU path fit a frame's faces in one batch; each must get, bit for bit, the
    matrix ``estimate_similarity`` gives it alone (enrolment, the CPU path)."""
    from mfr.runtime.align import estimate_similarities

    faces = _random_faces(2000)
    together = estimate_similarities(faces, MFN)
    alone = np.stack([estimate_similarity(face, MFN) for face in faces])
    assert np.array_equal(together, alone)
    assert estimate_similarities([], MFN).shape == (0, 2, 3)
    with pytest.raises(ValueError, match=r"5 finite .* got \(4, 2\), \(5, 2\)"):
        estimate_similarities([np.zeros((5, 2)), np.zeros((4, 2))], MFN)


def test_matrices_are_inverted_as_opencv_inverts_them():
    """``invert_affine_many`` is OpenCV's invertAffineTransform for N matrices at once (the GPU path's
    crop->frame matrices must be the very ones warpAffine uses inside), singular ones included."""
    import cv2

    from mfr.runtime.align import estimate_similarities, invert_affine_many

    matrices = np.concatenate([estimate_similarities(_random_faces(2000, seed=1), MFN),
                               np.random.default_rng(2).normal(0, 50, (500, 2, 3)), np.zeros((1, 2, 3))])
    expected = np.stack([cv2.invertAffineTransform(m).ravel() for m in matrices])
    assert np.array_equal(invert_affine_many(matrices), expected)


def test_normalize_matches_hand_computed_values():
    image = np.zeros((112, 112, 3), np.uint8)
    image[0, 0] = (10, 20, 30)  # B, G, R as OpenCV reads it
    out = normalize(image, MFN, input_order="BGR")
    assert out.shape == (1, 3, 112, 112) and out.dtype == np.float32 and out.flags.c_contiguous
    expected_rgb = [(30 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (10 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(out[0, :, 0, 0], expected_rgb, rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 1, 1], [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6)


def test_normalize_keeps_bgr_for_bgr_models():
    detector = MODELS["retinaface-mnet025"].spec
    image = np.full((7, 9, 3), (104, 117, 123), np.uint8)
    out = normalize(image, detector, input_order="BGR")
    assert out.shape == (1, 3, 7, 9)
    np.testing.assert_array_equal(out, 0)
    swapped = normalize(image, detector, input_order="RGB")
    assert swapped[0, 0, 0, 0] == 123 - 104


def test_normalize_refuses_wrong_sizes_and_types():
    with pytest.raises(ValueError, match="expects 112x112"):
        normalize(np.zeros((100, 112, 3), np.uint8), MFN)
    with pytest.raises(ValueError, match="uint8"):
        normalize(np.zeros((112, 112, 3), np.float32), MFN)


def test_align_moves_landmarks_onto_the_template():
    spec = PreprocessSpec(input_size=(112, 112), color_order="RGB", scale=1 / 255, mean=(0, 0, 0),
                          std=(1, 1, 1), template=ARCFACE_TEMPLATE_112)
    frame = np.zeros((300, 400, 3), np.uint8)
    truth = _similarity(0.4, 1.8, 150, 60)
    landmarks = _apply(truth, np.array(ARCFACE_TEMPLATE_112))
    for x, y in landmarks:  # paint a bright dot at each landmark
        frame[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3] = 255
    crop = align_faces(frame, [landmarks], spec)[0]
    for tx, ty in ARCFACE_TEMPLATE_112:
        assert crop[int(round(ty)), int(round(tx))].max() > 200
    assert align_faces(frame, [], spec).shape == (0, 112, 112, 3)


def test_denormalize_undoes_normalize_for_both_colour_orders():
    import dataclasses

    from mfr.registry import get_model_entry
    from mfr.runtime.preprocess import denormalize, normalize

    images = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3)).astype(np.uint8)
    spec = get_model_entry("mobilefacenet").spec
    for order in ("RGB", "BGR"):
        chosen = dataclasses.replace(spec, color_order=order)
        assert np.array_equal(denormalize(normalize(images, chosen), chosen), images)
