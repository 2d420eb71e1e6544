"""The classical fills, checked against independent computations (scipy's sparse solver, numpy)."""

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch

from models.fills import border_ring, fill_hole, harmonic_fill, mean_fill
from models.geometry import hole_of


def reference_harmonic(image: np.ndarray) -> np.ndarray:
    """Laplace's equation on the hole of one [64, 64] channel, assembled pixel by pixel, sparse solve."""
    lo, hi = 16, 48
    unknowns = [(r, c) for r in range(lo, hi) for c in range(lo, hi)]
    number = {pixel: i for i, pixel in enumerate(unknowns)}
    matrix = scipy.sparse.lil_matrix((len(unknowns), len(unknowns)))
    rhs = np.zeros(len(unknowns))
    for i, (r, c) in enumerate(unknowns):
        matrix[i, i] = 4.0
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if (nr, nc) in number:
                matrix[i, number[nr, nc]] = -1.0
            else:
                rhs[i] += image[nr, nc]
    solution = scipy.sparse.linalg.spsolve(matrix.tocsr(), rhs)
    return solution.reshape(hi - lo, hi - lo)


def test_harmonic_fill_matches_a_sparse_solve_of_laplaces_equation():
    images = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    filled = harmonic_fill(images)
    for b in range(2):
        for ch in range(3):
            expected = reference_harmonic(images[b, ch].numpy())
            np.testing.assert_allclose(hole_of(filled)[b, ch].numpy(), expected, atol=1e-9)


def test_harmonic_fill_keeps_the_context_and_reproduces_a_linear_ramp():
    ramp = torch.linspace(-1, 1, 64).expand(1, 3, 64, 64).contiguous()  # harmonic itself
    filled = harmonic_fill(ramp)
    torch.testing.assert_close(filled, ramp, atol=1e-5, rtol=0)
    noisy = torch.rand(1, 3, 64, 64)
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[16:48, 16:48] = False
    assert torch.equal(harmonic_fill(noisy)[..., outside], noisy[..., outside])


def test_mean_fill_is_the_mean_colour_of_the_ring_around_the_hole():
    images = torch.rand(3, 3, 64, 64)
    ring = np.concatenate([
        images[:, :, 15, 16:48].numpy(), images[:, :, 48, 16:48].numpy(),
        images[:, :, 16:48, 15].numpy(), images[:, :, 16:48, 48].numpy(),
    ], axis=-1)
    assert ring.shape == (3, 3, 128)
    np.testing.assert_allclose(border_ring(images).numpy(), ring)
    center = hole_of(mean_fill(images)).numpy()
    np.testing.assert_allclose(center, np.broadcast_to(ring.mean(-1)[..., None, None], center.shape), rtol=1e-5)


def test_unknown_fill_is_rejected_by_name():
    with pytest.raises(ValueError, match="allowed: zeros, mean, harmonic"):
        fill_hole(torch.zeros(1, 3, 64, 64), "telea")
