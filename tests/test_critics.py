"""The critics' recipes: the patch critic's score map, receptive field and hole labels, and critic features."""

import pytest
import torch
from torch import nn

from models import build_critic
from models.critics import ReceptiveField, hole_label_map, patch_field
from models.geometry import HOLE_SIZE, HOLE_START, IMAGE_SIZE
from models.options import CriticOptions
from raysearch import losses

BATCH = 4
# (kernel_size, depth, pooling) -> receptive field of a cell, side of the score map
PATCH_CASES = {
    (5, 2, "strided"): (29, 16),
    (3, 3, "strided"): (31, 8),
    (3, 2, "strided"): (15, 16),
    (5, 2, "avg"): (32, 16),
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def patch_critic(kernel: int = 5, depth: int = 2, pooling: str = "strided", **options) -> nn.Module:
    opts = CriticOptions(name="patch", kernel_size=kernel, depth=depth, pooling=pooling, base_width=4, max_width=16,
                         **options)
    return build_critic(opts, IMAGE_SIZE)


@pytest.mark.parametrize("case", sorted(PATCH_CASES))
def test_patch_critic_scores_a_map_of_cells(case) -> None:
    size, cells = PATCH_CASES[case]
    critic = patch_critic(*case)
    assert critic(torch.randn(BATCH, 3, 64, 64)).shape == (BATCH, cells, cells)
    assert critic.field.size == size and critic.cells == cells


@pytest.mark.parametrize("case", sorted(PATCH_CASES))
def test_patch_receptive_field_is_what_a_cell_depends_on(case) -> None:
    # Positive weights and inputs: every pixel a cell reads moves it, so the gradient's support is its field.
    critic = patch_critic(*case, norm="none")
    with torch.no_grad():
        for parameter in critic.parameters():
            parameter.fill_(0.01)
    images = (torch.rand(1, 3, 64, 64) + 0.1).requires_grad_(True)
    scores = critic(images)
    field = critic.field
    for cell in (0, critic.cells // 2, critic.cells - 1):
        (grad,) = torch.autograd.grad(scores[0, cell, cell], images, retain_graph=True)
        rows = grad[0].abs().sum(dim=(0, 2)).nonzero().squeeze(1)
        first, last = field.window(cell)
        assert (rows.min().item(), rows.max().item()) == (max(first, 0), min(last, IMAGE_SIZE - 1)), cell
    middle = critic.cells // 2
    first, last = field.window(middle)
    assert 0 < first and last < IMAGE_SIZE - 1  # a cell in the middle reads its whole field, no padding
    assert last - first + 1 == PATCH_CASES[case][0]


@pytest.mark.parametrize("case", sorted(PATCH_CASES))
def test_hole_labels_are_the_cells_a_change_in_the_hole_moves(case) -> None:
    critic = patch_critic(*case, norm="none")
    images = torch.randn(2, 3, 64, 64)
    changed = images.clone()
    hole = slice(HOLE_START, HOLE_START + HOLE_SIZE)
    changed[..., hole, hole] = torch.randn(2, 3, HOLE_SIZE, HOLE_SIZE)
    with torch.no_grad():
        moved = (critic(images) != critic(changed)).all(dim=0)
    assert torch.equal(moved, critic.hole_labels)


def test_hole_label_map_by_hand() -> None:
    # kernel 5, depth 2: cell i reads 4i - 14 ... 4i + 14; the hole is 16 ... 47.
    field = ReceptiveField(29, 4, -14)
    labels = hole_label_map(field, 16)
    touching = torch.tensor([i >= 1 for i in range(16)])
    assert torch.equal(labels, touching[:, None] & touching[None, :])
    assert labels.sum() == 15 * 15  # 31 of the 256 cells see only the context
    # A 7-px field (cells 2 px apart, no padding): cell i reads 2i ... 2i + 6, so cells 5 ... 23 touch.
    labels = hole_label_map(ReceptiveField(7, 2, 0), 29)
    assert labels[5, 5] and labels[23, 23] and not labels[4, 10] and not labels[10, 24]


def test_patch_critic_refuses_center_inputs_and_whole_image_fields() -> None:
    with pytest.raises(ValueError, match="input: the patch critic scores whole 64x64 images"):
        build_critic(CriticOptions(name="patch", input="center", depth=2), 32)
    with pytest.raises(ValueError, match="depth: a patch critic with kernel_size 5, depth 4 .* sees 125 px"):
        build_critic(CriticOptions(name="patch"), 64)
    with pytest.raises(ValueError, match="sees 91 px"):
        patch_field(CriticOptions(name="patch", kernel_size=7, depth=3))
    assert patch_field(CriticOptions(name="patch", depth=3)).size == 61  # below 64: still a patch


@pytest.mark.parametrize("norm", ["batch", "layer", "none", "spectral"])
def test_patch_critic_forward_backward_and_penalties(norm) -> None:
    critic = patch_critic(norm=norm)
    real, fake = torch.randn(BATCH, 3, 64, 64), torch.randn(BATCH, 3, 64, 64)
    loss = losses.mask_aware_critic_loss("nsgan", critic(real), critic(fake), critic.hole_labels)
    if norm != "batch":  # the penalties are per sample (the config refuses batch norm with them)
        loss = loss + losses.r1_penalty(critic, real) + losses.gradient_penalty(critic, real, fake)
    loss.backward()
    for name, parameter in critic.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize(
    "opts,size",
    [(CriticOptions(base_width=4, max_width=16), 64), (CriticOptions(base_width=4, input="center", depth=3), 36),
     (CriticOptions(name="patch", base_width=4, depth=2), 64)],
    ids=["conv", "conv-center", "patch"],
)
def test_critics_return_their_stage_features_on_request(opts, size) -> None:
    critic = build_critic(opts, size).eval()
    images = torch.randn(BATCH, 3, size, size)
    with torch.no_grad():
        scores, features = critic(images, return_features=True)
        assert torch.equal(scores, critic(images))
        stages = list(critic.features.children())
        x, expected = images, []
        for stage in stages:
            x = stage(x)
            expected.append(x)
    assert len(features) == opts.depth
    assert all(torch.equal(f, e) for f, e in zip(features, expected))
    assert features[0].shape[:2] == (BATCH, opts.base_width)
