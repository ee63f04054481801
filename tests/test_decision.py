"""The open-set decision rule, thresholds at a FAR, and the mask classifier, against cases built by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mfr.errors import ManifestError, MfrError
from mfr.manifest import ThresholdRecord, ThresholdTable
from mfr.recognition.decision import DecisionPolicy, Identifier
from mfr.recognition.gallery import TemplateMatrix
from mfr.recognition.search import ExactSearch


def unit(*values: float) -> np.ndarray:
    v = np.array(values, np.float32)
    return v / np.linalg.norm(v)


def test_threshold_table_by_hand():
    from mfr.benchmarks.thresholds import threshold_table

    scores = np.arange(1000) / 1000.0  # 0.000 ... 0.999
    table = threshold_table(scores, "unmasked")
    assert table.impostor_pairs == 1000 and table.far == [1e-1, 3e-2, 1e-2, 3e-3, 1e-3]  # 1e-3 * 1000 = 1 pair
    for far, threshold in zip(table.far, table.threshold, strict=True):
        accepted = int((scores >= threshold).sum())
        assert accepted == int(far * 1000)  # exactly the allowed number of false accepts, no more
    assert table.at(1e-2) == table.threshold[2]
    assert table.threshold[2] < table.at(5e-3) < table.threshold[3]  # between measured FARs
    with pytest.raises(ManifestError, match="not resolvable"):
        table.at(1e-4)


def record(unmasked: list[float], masked: list[float]) -> ThresholdRecord:
    fars = [1e-2, 1e-3, 1e-4]
    return ThresholdRecord("0" * 64, "hand", True, "", ThresholdTable("unmasked", fars, unmasked, 10_000),
                           ThresholdTable("masked", fars, masked, 10_000),
                           ThresholdTable("masked-template", fars, [m + 0.1 for m in masked], 10_000))


ALICE, BOB, CAROL = 1, 2, 3
NAMES = {ALICE: "alice", BOB: "bob", CAROL: "carol"}


def identifier(policy: DecisionPolicy | None = None,
               negatives: tuple[np.ndarray, np.ndarray] | None = None) -> Identifier:
    policy = policy or DecisionPolicy(target_far=1e-2, min_margin=0.05)
    embeddings = np.stack([unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 1, 0), unit(0.2, 0, 0, 0.98)])
    matrix = TemplateMatrix(embeddings, np.array([ALICE, BOB, CAROL, ALICE]), np.array([False, False, False, True]),
                            NAMES)
    return Identifier(ExactSearch(matrix), NAMES, record([0.5, 0.6, 0.7], [0.55, 0.65, 0.75]), policy, negatives)


def test_a_clear_match_is_named_and_a_stranger_is_unknown():
    alice, stranger = unit(0.9, 0.1, 0, 0), unit(0.3, 0.3, 0.3, -0.8)
    first, second = identifier().decide(np.stack([alice, stranger]), np.array([False, False]))
    assert first.name == "alice" and first.reason == "accepted" and first.score == pytest.approx(float(alice[0]))
    assert second.name is None and second.reason == "below threshold"


def test_the_threshold_tightens_with_the_templates_searched():
    ident = identifier(DecisionPolicy(target_far=1e-1))
    # an unmasked probe meets 3 unmasked templates: per-comparison FAR 1e-1/3, between 1e-2 (0.5) and 1e-3
    threshold, far, _ = ident.threshold(masked=False, searched=3)
    assert far == pytest.approx(1e-1 / 3) and threshold == 0.5  # above the table's largest FAR: its threshold
    threshold, far, _ = ident.threshold(masked=False, searched=100)
    assert far == pytest.approx(1e-3) and threshold == pytest.approx(0.6)
    threshold, far, offset = ident.threshold(masked=True, searched=100)
    assert threshold == pytest.approx(0.65) and offset == pytest.approx(0.1)  # masked-template table: 0.75
    threshold, far, _ = ident.threshold(masked=False, searched=10**9)  # beyond the table: its strictest threshold
    assert far == 1e-4 and threshold == 0.7


def test_unmasked_probes_ignore_masked_templates():
    probe = unit(0.2, 0, 0, 0.98)  # identical to alice's masked template, far from her unmasked one
    unmasked, masked = identifier().decide(np.stack([probe, probe]), np.array([False, True]))
    assert unmasked.score == pytest.approx(float(probe[0]), abs=1e-6) and unmasked.name is None
    offset = identifier().threshold(masked=True, searched=4)[2]  # masked probe vs masked template: 0.1 stricter
    assert masked.score == pytest.approx(1.0 - offset, abs=1e-6) and masked.name == "alice"


def test_two_close_people_are_ambiguous():
    between = unit(1, 0.97, 0, 0)
    decision = identifier().decide(between[None], np.array([False]))[0]
    assert decision.name is None and decision.reason == "ambiguous" and decision.margin < 0.05


def test_a_negative_closer_than_the_person_blocks_the_name():
    lookalike = unit(0.9, 0, 0.1, 0.3)
    negatives = (lookalike[None], np.array([ALICE]))
    assert identifier().decide(lookalike[None], np.array([False]))[0].name == "alice"
    blocked = identifier(negatives=negatives).decide(lookalike[None], np.array([False]))[0]
    assert blocked.name is None and blocked.reason == "negative match"
    other = identifier(negatives=negatives).decide(unit(1, 0, 0, 0)[None], np.array([False]))[0]
    assert other.name == "alice"  # alice herself is closer to her template than to the negative


def test_no_thresholds_and_no_fixed_threshold_is_an_error_naming_the_command():
    matrix = TemplateMatrix(np.eye(2, dtype=np.float32), np.array([1, 2]), np.zeros(2, bool), {1: "a", 2: "b"})
    with pytest.raises(MfrError, match="mfr thresholds --package"):
        Identifier(ExactSearch(matrix), matrix.names, None, DecisionPolicy())
    fixed = Identifier(ExactSearch(matrix), matrix.names, None, DecisionPolicy(threshold=0.9))
    assert fixed.decide(np.eye(2, dtype=np.float32), np.zeros(2, bool))[1].name == "b"


def test_an_empty_gallery_names_nobody():
    empty = TemplateMatrix(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool), {})
    ident = Identifier(ExactSearch(empty), {}, None, DecisionPolicy(threshold=0.5))
    assert ident.decide(unit(1, 0, 0, 0)[None], np.array([False]))[0].reason == "empty gallery"


def test_the_shipped_mask_classifier_tells_synthetic_masks_on_unseen_faces():
    """Faces of LFW folds 6-10 (never used to train the classifier), bare and with a synthetic mask."""
    from mfr.augment.masks import MaskGenerator
    from mfr.data.lfw import read_lfw
    from mfr.recognition.mask_state import MaskClassifier
    from mfr.runtime.align import aligned_crop_landmarks
    from mfr.runtime.image_io import read_image_bgr

    paths = [p for p in read_lfw().images() if p.name.endswith("_0001.jpg")][-60:]
    masks = MaskGenerator(seed=11)
    bare = np.stack([read_image_bgr(p) for p in paths])
    covered = np.stack([masks.apply(face, aligned_crop_landmarks(112, 112), key=str(p)) for face, p in zip(
        bare, paths, strict=True)])
    classifier = MaskClassifier.load()
    assert (~classifier.predict(bare)).mean() >= 0.95 and classifier.predict(covered).mean() >= 0.95
    assert classifier.about["mfr2_accuracy"] >= 0.9  # measured on real masks when it was trained
