"""MEER's architecture: edge-sized next to MobileFaceNet, the decoupling splits the trunk's features into
an identity part and a mask part that add up to them, and nothing used only in training ships."""

from __future__ import annotations

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
