import pytest

from mfr.errors import UnknownModelError
from mfr.registry import MODELS, _index, get_model_entry
from tests.conftest import needs_torch


def test_unknown_model_lists_known_ones():
    with pytest.raises(UnknownModelError) as info:
        get_model_entry("resnet9000")
    for name in ("mobilefacenet", "iresnet50", "retinaface-mnet025"):
        assert name in str(info.value)


def test_duplicate_names_are_refused():
    entry = MODELS["mobilefacenet"]
    with pytest.raises(ValueError, match="duplicate"):
        _index((entry, entry))


def test_shipped_weights_are_package_data():
    for name in ("mobilefacenet", "mobilefacenet-masked", "retinaface-mnet025"):
        weights = MODELS[name].default_weights
        assert weights is not None and weights.is_file()
        assert (weights.parent / "LICENSE").is_file()


@needs_torch
@pytest.mark.parametrize("depth, blocks", [(18, (2, 2, 2, 2)), (34, (3, 4, 6, 3)), (50, (3, 4, 14, 3)),
                                           (100, (3, 13, 30, 3))])
def test_iresnet_layout_matches_arcface_torch_backbones(depth, blocks):
    """Key names and shapes of insightface arcface_torch backbone.pth files."""
    import torch

    model = get_model_entry(f"iresnet{depth}").build().eval()
    state = model.state_dict()
    for layer, count in enumerate(blocks, start=1):
        assert f"layer{layer}.{count - 1}.bn3.running_var" in state
        assert f"layer{layer}.{count}.conv1.weight" not in state
        assert f"layer{layer}.0.downsample.0.weight" in state
    assert state["fc.weight"].shape == (512, 512 * 7 * 7)
    assert state["prelu.weight"].shape == (64,)
    assert state["layer1.0.prelu.weight"].shape == (64,)
    assert {"features.weight", "features.running_mean", "bn2.weight", "conv1.weight"} <= set(state)
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 112, 112)).shape == (2, 512)


def test_shipped_weights_are_the_recorded_files():
    """Each recorded sha256 is that of the file shipped (hashed here with hashlib, not by mfr)."""
    import hashlib

    recorded = [entry for entry in MODELS.values() if entry.weights_sha256 is not None]
    assert {"mobilefacenet", "mobilefacenet-masked", "retinaface-mnet025"} <= {entry.name for entry in recorded}
    for entry in recorded:
        assert hashlib.sha256(entry.default_weights.read_bytes()).hexdigest() == entry.weights_sha256, entry.name


@needs_torch
def test_a_changed_shipped_file_is_refused(tmp_path):
    from dataclasses import replace

    from mfr.errors import CheckpointError
    from mfr.models.checkpoint import shipped_weights

    entry = MODELS["mobilefacenet"]
    assert shipped_weights(entry) == entry.default_weights
    changed = tmp_path / "mobilefacenet.pt"
    data = bytearray(entry.default_weights.read_bytes())
    data[-1] ^= 1
    changed.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"mobilefacenet: shipped weights .*mobilefacenet.pt have sha256"):
        shipped_weights(replace(entry, default_weights=changed))
    with pytest.raises(CheckpointError, match="not found"):
        shipped_weights(replace(entry, default_weights=tmp_path / "gone.pt"))


@needs_torch
def test_shipped_torch_weights_load_strictly_into_their_architecture():
    from mfr.models.checkpoint import load_weights, shipped_weights

    for entry in MODELS.values():
        if entry.weights_sha256 is not None:  # every tensor present, none unexpected, every shape right
            load_weights(entry.build(), shipped_weights(entry), entry.name, entry.strip_prefix)
