"""Fronts, crowding, promotion order, hypervolume and knee: hand-computed cases, an exact brute force, and the
properties a front must have (dominated points change nothing, order does not matter, min/max mirror)."""

import itertools
import math

import numpy as np
import pytest

from raysearch.frontier import (
    crowding_distances,
    hypervolume,
    knee,
    nondominated_fronts,
    promotion_order,
)

MINMIN = ["min", "min"]

# Both minimised: 1 and 5 are equal; 3 is dominated by 1 (and 5) only; 4 by 3; 6 by everything.
KNOWN = [(1, 5), (2, 3), (3, 1), (2, 4), (4, 4), (2, 3), (5, 5)]

# A front whose crowding distances differ: x spans 10, y spans 10.
SPREAD = [(0, 10), (1, 6), (4, 5), (10, 0)]


def brute_force_volume(points, reference):
    """Exact hypervolume of integer points (every objective minimised) by counting unit cells: the cell with
    lower corner c lies in a point p's box iff p <= c on every axis."""
    cells = itertools.product(*[range(int(lo), int(r)) for lo, r in zip(np.min(points, axis=0), reference)])
    return sum(1 for c in cells if any(all(pi <= ci for pi, ci in zip(p, c)) for p in points
                                       if all(pi < ri for pi, ri in zip(p, reference))))


# ---------------------------------------------------------------- fronts


def test_fronts_of_a_known_set():
    assert nondominated_fronts(KNOWN, MINMIN) == [[0, 1, 2, 5], [3], [4], [6]]


def test_duplicates_share_a_front():
    assert nondominated_fronts([(1, 1), (1, 1), (2, 2), (2, 2)], MINMIN) == [[0, 1], [2, 3]]


def test_max_objectives_are_the_mirror_of_min_ones():
    mirrored = [(-x, -y) for x, y in KNOWN]
    assert nondominated_fronts(mirrored, ["max", "max"]) == nondominated_fronts(KNOWN, MINMIN)
    mixed = [(x, -y) for x, y in KNOWN]
    assert nondominated_fronts(mixed, ["min", "max"]) == nondominated_fronts(KNOWN, MINMIN)


def test_nan_none_and_infinite_points_are_one_last_front():
    points = KNOWN + [(math.nan, 0.0), (None, 0.0), (0.0, -math.inf), (0.0, math.inf)]
    fronts = nondominated_fronts(points, MINMIN)
    assert fronts[:-1] == nondominated_fronts(KNOWN, MINMIN)
    assert fronts[-1] == [7, 8, 9, 10]


def test_only_invalid_points():
    assert nondominated_fronts([(None, 1), (math.nan, 2)], MINMIN) == [[0, 1]]
    assert nondominated_fronts([], MINMIN) == []


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="direction 'up'"):
        nondominated_fronts([(1, 2)], ["min", "up"])
    with pytest.raises(ValueError, match="point 0 has 3 values for 2 objectives"):
        nondominated_fronts([(1, 2, 3)], MINMIN)


# ---------------------------------------------------------------- crowding and promotion


def test_crowding_distances_by_hand():
    # x: 1 gets (4 - 0) / 10, 2 gets (10 - 1) / 10; y: 2 gets (6 - 0) / 10, 1 gets (10 - 5) / 10.
    distances = crowding_distances(SPREAD, MINMIN, [0, 1, 2, 3])
    assert distances[0] == math.inf and distances[3] == math.inf
    assert distances[1] == pytest.approx(0.4 + 0.5)
    assert distances[2] == pytest.approx(0.9 + 0.6)


def test_crowding_of_small_fronts_constant_objectives_and_invalid_members():
    assert crowding_distances(SPREAD, MINMIN, [1, 2]) == {1: math.inf, 2: math.inf}
    # y is constant: only x spreads the members.
    flat = [(0, 1), (1, 1), (3, 1), (4, 1)]
    assert crowding_distances(flat, MINMIN, [0, 1, 2, 3]) == pytest.approx(
        {0: math.inf, 1: 3 / 4, 2: 3 / 4, 3: math.inf})
    with_nan = SPREAD + [(math.nan, 1)]
    distances = crowding_distances(with_nan, MINMIN, [0, 1, 2, 3, 4])
    assert distances[4] == 0.0 and distances[1] == pytest.approx(0.9)


def test_promotion_order_is_front_then_crowding_then_index():
    # SPREAD's boundary points (0, 3) first by index, then 2 (1.5) before 1 (0.9); then dominated points.
    points = SPREAD + [(11, 11), (None, 0), (5, 5.5)]
    assert promotion_order(points, MINMIN) == [0, 3, 2, 1, 6, 4, 5]


def test_promotion_order_mirrors_with_directions():
    points = [(x, -y) for x, y in SPREAD]
    assert promotion_order(points, ["min", "max"]) == promotion_order(SPREAD, MINMIN)


# ---------------------------------------------------------------- hypervolume


def test_hypervolume_of_a_staircase_by_hand():
    # Strips: (5 - 1) * (5 - 4) + (5 - 2) * (4 - 2) + (5 - 4) * (2 - 1) = 4 + 6 + 1.
    assert hypervolume([(1, 4), (2, 2), (4, 1)], MINMIN, (5, 5)) == pytest.approx(11.0)


def test_hypervolume_in_three_dimensions_by_hand():
    assert hypervolume([(0, 0, 0)], ["min"] * 3, (1, 2, 3)) == pytest.approx(6.0)
    # Boxes of 4 and 2 that share the unit cube [1, 2]^3.
    assert hypervolume([(0, 0, 1), (1, 1, 0)], ["min"] * 3, (2, 2, 2)) == pytest.approx(5.0)


def test_hypervolume_of_one_objective_is_the_best_gap():
    assert hypervolume([(3,), (1,), (7,)], ["max"], (2,)) == pytest.approx(5.0)


@pytest.mark.parametrize("dims", [2, 3, 4])
def test_hypervolume_matches_counting_cells(dims):
    rng = np.random.default_rng(dims)
    for _ in range(5):
        points = rng.integers(0, 6, size=(rng.integers(1, 9), dims)).tolist()
        reference = [6] * dims
        assert hypervolume(points, ["min"] * dims, reference) == pytest.approx(brute_force_volume(points, reference))


def test_points_not_strictly_inside_the_reference_add_nothing():
    base = hypervolume([(1, 4), (2, 2)], MINMIN, (5, 5))
    assert hypervolume([(1, 4), (2, 2), (0, 5), (5, 0), (6, -1)], MINMIN, (5, 5)) == pytest.approx(base)
    assert hypervolume([(5, 5), (7, 1)], MINMIN, (5, 5)) == 0.0
    assert hypervolume([], MINMIN, (5, 5)) == 0.0


def test_hypervolume_ignores_invalid_points():
    base = hypervolume([(1, 4), (2, 2)], MINMIN, (5, 5))
    assert hypervolume([(1, 4), (None, 0), (2, 2), (math.nan, 0), (-math.inf, 0)], MINMIN, (5, 5)) == base


def test_hypervolume_mirrors_with_directions():
    points = [(1, 4), (2, 2), (4, 1)]
    mirrored = [(-x, y) for x, y in points]
    assert hypervolume(mirrored, ["max", "min"], (-5, 5)) == pytest.approx(11.0)
    # A PSNR-like objective maximised above a floor, a distance minimised below a ceiling.
    assert hypervolume([(20.0, 0.5), (18.0, 0.2)], ["max", "min"], (16.0, 1.0)) == pytest.approx(
        4.0 * 0.5 + 2.0 * 0.3)


def test_hypervolume_rejects_a_bad_reference():
    with pytest.raises(ValueError, match="reference has 1 values for 2 objectives"):
        hypervolume([(1, 2)], MINMIN, (3,))
    with pytest.raises(ValueError, match="must be finite"):
        hypervolume([(1, 2)], MINMIN, (3, math.nan))


# ---------------------------------------------------------------- knee


def test_knee_by_hand():
    # Normalised sums: 1, 0.7, 0.9, 1.
    assert knee(SPREAD, MINMIN) == 1
    assert knee(SPREAD, MINMIN, [0, 2, 3]) == 2


def test_knee_of_one_and_two_members():
    assert knee([(3, 3)], MINMIN) == 0
    # Two extremes tie: the one better on the first declared objective wins, whatever its direction.
    assert knee([(0, 1), (1, 0)], MINMIN) == 0
    assert knee([(1, 5), (2, 9)], ["max", "min"]) == 1


def test_knee_defaults_to_the_first_front_and_skips_invalid_members():
    points = SPREAD + [(0.5, 5.5), (None, 0)]  # 4 dominates 1; 5 is invalid
    assert knee(points, MINMIN) == 4
    assert knee(points, MINMIN, [5, 0]) == 0
    with pytest.raises(ValueError, match="no member"):
        knee([(None, 1)], MINMIN)


def test_knee_on_a_concave_front_is_an_extreme():
    assert knee([(0, 1), (0.8, 0.8), (1, 0)], MINMIN) == 0


# ---------------------------------------------------------------- properties on random fronts


def random_points(seed, n=25, dims=2):
    return np.random.default_rng(seed).uniform(0, 10, size=(n, dims)).tolist()


@pytest.mark.parametrize("seed", range(5))
def test_a_dominated_point_changes_neither_front_nor_hypervolume(seed):
    points = random_points(seed)
    reference = (11, 11)
    front = nondominated_fronts(points, MINMIN)[0]
    worse = [points[front[0]][0] + 0.5, points[front[0]][1] + 0.1]
    grown = points + [worse]
    assert nondominated_fronts(grown, MINMIN)[0] == front
    assert hypervolume(grown, MINMIN, reference) == pytest.approx(hypervolume(points, MINMIN, reference))
    assert knee(grown, MINMIN) == knee(points, MINMIN)


@pytest.mark.parametrize("dims", [2, 3])
def test_a_new_nondominated_point_strictly_increases_the_hypervolume(dims):
    rng = np.random.default_rng(100 + dims)  # not random_points' stream: its points would come back
    points = random_points(dims, dims=dims)
    reference = [11] * dims
    added = 0
    for candidate in rng.uniform(0, 10, size=(200, dims)).tolist():
        grown = points + [candidate]
        if len(grown) - 1 in nondominated_fronts(grown, ["min"] * dims)[0] and candidate not in points:
            assert hypervolume(grown, ["min"] * dims, reference) > hypervolume(points, ["min"] * dims, reference)
            added += 1
    assert added >= 5  # the check above ran


@pytest.mark.parametrize("seed", range(3))
def test_order_of_points_does_not_matter(seed):
    points = random_points(seed, dims=3)
    directions = ["min", "max", "min"]
    permutation = np.random.default_rng(seed).permutation(len(points)).tolist()
    shuffled = [points[i] for i in permutation]
    fronts = [sorted(permutation[i] for i in front) for front in nondominated_fronts(shuffled, directions)]
    assert fronts == [sorted(front) for front in nondominated_fronts(points, directions)]
    reference = (11, -1, 11)
    assert hypervolume(shuffled, directions, reference) == pytest.approx(hypervolume(points, directions, reference))
    assert permutation[knee(shuffled, directions)] == knee(points, directions)
    # The same ranking, relabelled, but for the order among equals (boundary points, all infinite), which is
    # by index and so follows the shuffle.
    fronts = nondominated_fronts(points, directions)
    rank = {i: (f, -crowding_distances(points, directions, front)[i]) for f, front in enumerate(fronts) for i in front}
    relabelled = [rank[permutation[i]] for i in promotion_order(shuffled, directions)]
    assert relabelled == sorted(rank[i] for i in promotion_order(points, directions)) == sorted(relabelled)


@pytest.mark.parametrize("seed", range(3))
def test_min_and_max_mirror_each_other(seed):
    points = random_points(seed, dims=3)
    negated = [[-v for v in p] for p in points]
    assert nondominated_fronts(negated, ["max"] * 3) == nondominated_fronts(points, ["min"] * 3)
    assert promotion_order(negated, ["max"] * 3) == promotion_order(points, ["min"] * 3)
    assert hypervolume(negated, ["max"] * 3, (-11, -11, -11)) == pytest.approx(
        hypervolume(points, ["min"] * 3, (11, 11, 11)))
    assert knee(negated, ["max"] * 3) == knee(points, ["min"] * 3)
