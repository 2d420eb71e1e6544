"""DeepFill v1's contextual attention: it copies known-region feature patches into the hole, and only there."""

import pytest
import torch

from models.geometry import hole_mask
from models.layers import ContextualAttention


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def copied_scene(channels: int = 32, size: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features whose 4x4 hole (rows/columns 10..13) holds a noisy copy of a known block (2..5), its ring a clean one.

    Returns (features, hole mask, the clean source block the hole should get back).
    """
    hole = torch.zeros(size, size, dtype=torch.bool)
    hole[10:14, 10:14] = True
    features = torch.randn(2, channels, size, size)
    features[:, :, 9:15, 9:15] = features[:, :, 1:7, 1:7]  # the block and its ring, so every hole patch has a twin
    source = features[:, :, 2:6, 2:6].clone()
    features[:, :, 10:14, 10:14] += 0.5 * torch.randn(2, channels, 4, 4)  # the network's own, wrong, guess
    return features, hole, source


def test_the_hole_gets_the_known_patch_it_resembles_back() -> None:
    features, hole, source = copied_scene()
    out = ContextualAttention(hole, scale=100.0)(features)
    assert torch.allclose(out[:, :, 10:14, 10:14], source, atol=1e-4)
    assert not torch.allclose(features[:, :, 10:14, 10:14], source, atol=0.1)  # the input held something else
    # At DeepFill's softmax scale the copy is a soft one, still near the source.
    soft = ContextualAttention(hole)(features)[:, :, 10:14, 10:14]
    assert (soft - source).abs().mean() < 0.1 * (features[:, :, 10:14, 10:14] - source).abs().mean()


def test_known_locations_come_back_untouched() -> None:
    features, hole, _ = copied_scene()
    out = ContextualAttention(hole)(features)
    assert torch.equal(out[:, :, ~hole], features[:, :, ~hole])
    assert not torch.equal(out[:, :, hole], features[:, :, hole])


def test_matching_is_by_cosine_similarity_so_scaling_the_map_scales_the_copies() -> None:
    # A dot product would sharpen the softmax as the features grow; the cosine does not see the scale.
    attention = ContextualAttention(hole_mask(16))
    features = torch.randn(2, 8, 16, 16)
    assert torch.allclose(attention(3.0 * features), 3.0 * attention(features), atol=1e-5)


def test_each_image_copies_from_its_own_context() -> None:
    attention = ContextualAttention(hole_mask(16))
    features = torch.randn(3, 8, 16, 16)
    other = features.clone()
    other[1] = torch.randn(8, 16, 16)
    assert torch.equal(attention(features)[[0, 2]], attention(other)[[0, 2]])


@pytest.mark.parametrize("size", [16, 32])
def test_attention_is_differentiable_and_keeps_the_shape(size) -> None:
    attention = ContextualAttention(hole_mask(size))
    features = torch.randn(2, 6, size, size, requires_grad=True)
    out = attention(features)
    assert out.shape == features.shape
    out.square().sum().backward()
    assert torch.isfinite(features.grad).all()
    # A hole location's output depends on known locations (the copies come from there).
    (grad,) = torch.autograd.grad(attention(features)[0, 0, size // 2, size // 2], features)
    assert grad[0, :, 0].abs().sum() > 0


def test_patches_of_zeros_keep_the_gradient_finite() -> None:
    # After a ReLU whole patches are zero; a norm's square root there must not turn into NaN.
    features = torch.relu(torch.randn(2, 4, 16, 16))
    features[:, :, :6] = 0.0
    features.requires_grad_(True)
    ContextualAttention(hole_mask(16))(features).square().sum().backward()
    assert torch.isfinite(features.grad).all()


def test_bad_holes_and_maps_are_refused() -> None:
    with pytest.raises(ValueError, match=r"hole: expected an \[H, W\] bool mask"):
        ContextualAttention(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="hole: needs hole locations"):
        ContextualAttention(torch.zeros(8, 8, dtype=torch.bool))
    edge = torch.zeros(8, 8, dtype=torch.bool)
    edge[0, 3] = True
    with pytest.raises(ValueError, match="none on the map's edge"):
        ContextualAttention(edge)
    with pytest.raises(ValueError, match="x: this attention was built for"):
        ContextualAttention(hole_mask(16))(torch.randn(1, 4, 32, 32))


def test_hole_mask_is_the_central_half() -> None:
    assert hole_mask(16).nonzero()[:, 0].unique().tolist() == list(range(4, 12))
    assert hole_mask(64).sum() == 32 * 32
    with pytest.raises(ValueError, match="size: a map covering the whole image"):
        hole_mask(12)
