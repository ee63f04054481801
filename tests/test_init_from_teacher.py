"""G2D and MEER started from a pretrained recognizer (``--init teacher``): the student holds the teacher's
weights in every layer the teacher has, and only the method's own parts are new. Checked against the
teacher itself: its state dict tensor by tensor, and its embedding, which a G2D student (E = trunk, R = head)
and a MEER student without decoupling must reproduce before any training."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfr.errors import MfrError
from tests.conftest import first_and_last

torch = pytest.importorskip("torch")

from mfr.training.teacher import load_teacher  # noqa: E402


def iresnet_checkpoint(tmp_path: Path) -> Path:
    """An iResNet-18 with random weights and non-trivial batch-norm statistics, saved as a checkpoint."""
    from mfr.registry import get_model_entry

    torch.manual_seed(3)
    model = get_model_entry("iresnet18").build()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "backbone.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize("architecture", ["mobilefacenet", "iresnet18"])
def test_every_teacher_weight_is_in_the_student_and_only_the_methods_parts_are_new(architecture, tmp_path):
    from mfr.registry import get_model_entry

    weights = get_model_entry(architecture).default_weights or iresnet_checkpoint(tmp_path)
    teacher = load_teacher(weights, architecture)
    reference = torch.load(weights, map_location="cpu", weights_only=True)  # the file, not the loader's reading
    faces = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        expected = teacher.model().eval()(faces)
    for method in ("g2d", "meer", "meer-plain"):
        entry, student = teacher.student_on(method, "teacher")
        assert entry.name == f"{method}-{architecture}" and student.training
        state = student.state_dict()
        for key, tensor in reference.items():
            placed = [k for k in state if k.split(".", 1)[1] == key]
            assert len(placed) == 1, (method, key, placed)
            assert torch.equal(state[placed[0]], tensor), (method, key)
        new = {k.split(".", 1)[0] for k in state if k.split(".", 1)[1] not in reference}
        assert new == ({"decoupling"} if method == "meer" else set()), (method, new)
        with torch.no_grad():
            got = student.eval()(faces)
        if method == "meer":  # the decoupling module starts nearly open: (nearly) the teacher's embedding
            assert torch.nn.functional.cosine_similarity(got, expected).min() > 0.99
        else:  # no new part between trunk and head: the teacher's own embedding
            assert torch.allclose(got, expected, atol=1e-5), method


def test_random_init_is_the_from_scratch_ablation_and_other_inits_are_refused():
    from mfr.registry import get_model_entry

    teacher = load_teacher(get_model_entry("mobilefacenet").default_weights, "mobilefacenet")
    entry, student = teacher.student_on("meer", "random")
    assert entry.name == "meer" and "trunk.stages.0.0.weight" in student.state_dict()
    with pytest.raises(MfrError, match="--init must be one of teacher, random"):
        teacher.student_on("meer", "imagenet")


def test_a_recognizer_without_a_declared_split_is_refused():
    from mfr.models.split import split_recognizer

    with pytest.raises(TypeError, match="cannot be split into trunk and head"):
        split_recognizer(torch.nn.Linear(3, 3))


def test_every_g2d_stage_lowers_its_loss_from_the_teacher(mobilefacenet_package, tiny_folder, tmp_path):
    """--init teacher with the keep term, E trained in stage 2 and the cosine term: one batch of all 18 faces a
    step, every one masked in stage 2 (an unmasked face already gets the teacher's embedding)."""
    from mfr.training.g2d import G2DConfig, G2DTrainer

    config = G2DConfig(teacher=mobilefacenet_package, out=tmp_path / "g2d", data=tiny_folder, batch_size=18,
                       holes_epochs=6, masks_epochs=4, distill_epochs=6, classifier_epochs=4, classifier_lr=0.05,
                       keep_weight=1.0, distill_encoder="fine-tune", cosine_weight=1.0, mask_probability=1.0,
                       mask_looks=("templates",), augment_probability=0.0, validation_people=0.0, log_every=1)
    result = G2DTrainer(config)(log=lambda _: None)
    for stage in ("holes", "masks", "distill", "classifier"):  # the decoder starts where stage 1 left it
        first, last = first_and_last(result.log, stage=stage)
        assert last < 0.95 * first, (stage, first, last)
    first, last = first_and_last(result.log, "cosine_masked", "distill")
    assert last > first  # masked faces move towards the teacher's embedding of the same face unmasked


def test_every_meer_term_falls_from_the_teacher(mobilefacenet_package, tiny_folder, tmp_path):
    from mfr.training.meer import MEERConfig, MEERTrainer

    config = MEERConfig(teacher=mobilefacenet_package, out=tmp_path / "meer", data=tiny_folder, batch_size=18,
                        epochs=8, warmup_epochs=2, mask_probability=1.0, mask_looks=("templates",),
                        validation_people=0.0, log_every=1)
    result = MEERTrainer(config)(log=lambda _: None)
    for term in ("identity", "mask_map", "reconstruction", "identity_preserving"):
        first, last = first_and_last(result.log, term)
        assert last < 0.9 * first, (term, first, last)
