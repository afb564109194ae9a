"""Backbones: shapes, seeded initialisation that leaves the global RNG alone, clear errors."""

import pytest
import torch

from lifelong.models import ModelSpec, build_model, seeded_model


def test_mlp_and_convnet_map_inputs_to_one_output_per_class():
    images = torch.rand(5, 1, 8, 8)
    mlp = build_model(ModelSpec(hidden=[16, 16]), (1, 8, 8), 10)
    conv = build_model(ModelSpec(type="convnet", channels=[4, 8], hidden=[16]), (1, 8, 8), 10)
    assert mlp(images).shape == (5, 10) and conv(images).shape == (5, 10)
    assert sum(p.numel() for p in mlp.parameters()) == 64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10
    # conv 1->4 (3x3), pool to 4x4, conv 4->8, pool to 2x2, flatten 32 -> 16 -> 10
    assert sum(p.numel() for p in conv.parameters()) == (9 * 4 + 4) + (36 * 8 + 8) + (32 * 16 + 16) + (16 * 10 + 10)


def test_seeded_models_repeat_and_leave_global_rng_untouched():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = seeded_model(ModelSpec(hidden=[8]), (4,), 2, seed=7, device=torch.device("cpu"))
    b = seeded_model(ModelSpec(hidden=[8]), (4,), 2, seed=7, device=torch.device("cpu"))
    c = seeded_model(ModelSpec(hidden=[8]), (4,), 2, seed=8, device=torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected_next)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_convnet_rejects_vectors_and_too_many_pooling_stages():
    with pytest.raises(ValueError, match="model.type=mlp"):
        build_model(ModelSpec(type="convnet"), (40,), 10)
    with pytest.raises(ValueError, match="too many for inputs"):
        build_model(ModelSpec(type="convnet", channels=[4, 4, 4, 4]), (1, 8, 8), 10)
