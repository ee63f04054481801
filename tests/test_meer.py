"""MEER's architecture: edge-sized next to MobileFaceNet, the decoupling splits the trunk's features into
an identity part and a mask part that add up to them, and nothing used only in training ships."""

from __future__ import annotations

import pytest

from tests.conftest import needs_torch

pytestmark = needs_torch


def test_meer_is_edge_sized_and_ships_only_trunk_decoupling_and_head():
    from mfr.models.blocks import count_macs
    from mfr.models.meer import MEERNet, MEERPlainNet, MEERRestorer
    from mfr.models.mobilefacenet import MobileFaceNet

    meer, plain, reference = MEERNet(), MEERPlainNet(), MobileFaceNet()
    assert count_macs(meer) <= 1.5 * count_macs(reference)
    assert sum(p.numel() for p in meer.parameters()) <= 1.5 * sum(p.numel() for p in reference.parameters())
    assert {name.split(".")[0] for name in meer.state_dict()} == {"trunk", "decoupling", "head"}
    assert {name.split(".")[0] for name in plain.state_dict()} == {"trunk", "head"}
    assert count_macs(MEERRestorer(), (1, 128, 14, 14)) > 0  # the decoder is a module of its own


def test_decoupling_splits_the_features_into_parts_that_add_up():
    import torch

    from mfr.models.meer import MEERNet

    torch.manual_seed(0)
    model = MEERNet().eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        features = model.trunk(x)
        identity, mask, logits = model.decoupling(features)
        parts = model.parts(x)
    assert logits.shape == (2, 1, 14, 14)
    assert torch.allclose(identity + mask, features, atol=1e-6)
    assert torch.allclose(parts.identity, identity) and torch.equal(parts.embedding, model(x))
    assert parts.embedding.shape == (2, 128)
    with torch.no_grad():  # all attention on the mask: the identity part is empty and the head sees nothing
        model.decoupling.attention[-1].bias.fill_(50.0)
        assert model.parts(x).identity.abs().max().item() < 1e-12


def test_mask_map_loss_and_iou_against_hand_computed_values():
    import math

    import torch

    from mfr.training.meer_losses import identity_loss, mask_map_iou, mask_map_loss

    hidden = torch.zeros(1, 1, 4, 4)
    hidden[..., 2:, :] = 1.0  # the lower half hidden: on a 2x2 map, the lower two cells
    logits = torch.tensor([[[[-10.0, -10.0], [10.0, -10.0]]]])  # one lower cell found, the other missed
    assert mask_map_iou(logits, hidden) == 0.5
    # BCE per cell: three near 0, the missed one -log(sigmoid(-10)) = 10 + log(1 + e^-10)
    assert mask_map_loss(logits, hidden).item() == pytest.approx((10 + 4 * math.log1p(math.exp(-10))) / 4, rel=1e-4)
    assert math.isnan(mask_map_iou(logits, torch.zeros(1, 1, 4, 4)))  # no masked face: nothing to measure
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 0.0]])  # same direction, then orthogonal: losses 0 and 1
    assert identity_loss(a, b).item() == pytest.approx(0.5)
