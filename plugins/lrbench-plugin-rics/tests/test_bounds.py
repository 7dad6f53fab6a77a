"""Theorem 1 / eq. (4) bounds: the paper's worked example and the 'Theoretical Bound' row of Table 1."""

import pytest
from lrbench_rics.selection import adversarial_bound, consistency_bound


def test_worked_example_256_150_one_pixel():
    # section 3.2: 256 x 256 images, 150 x 150 crops -> adversarial robustness to 1-pixel shifts >= 93%
    b = adversarial_bound(256, 150, 1)
    assert b == pytest.approx((105 / 109) ** 2)
    assert round(100 * b) == 93


@pytest.mark.parametrize("shift,adv,cons", [(1, 91.02, 95.40), (3, 75.37, 86.83), (5, 62.33, 79.01), (9, 42.31, 65.37)])
def test_table1_theoretical_bound_row(shift, adv, cons):
    # Table 1 uses n = 224 and k = 140
    assert round(100 * adversarial_bound(224, 140, shift), 2) == adv
    assert round(100 * consistency_bound(224, 140, shift), 2) == cons


def test_edge_excluded_count_is_the_bound_on_the_interior_map():
    # positions Algorithm 1 may select: the (n-k-1)^2 interior of the score map
    for d in (1, 3, 5):
        assert adversarial_bound(224, 140, d, exclude_edge=True) == pytest.approx(((83 - 2 * d) / (83 + 2 * d)) ** 2)
        assert consistency_bound(224, 140, d, exclude_edge=True) == pytest.approx(((83 - d) / (83 + d)) ** 2)
    assert adversarial_bound(224, 140, 1, exclude_edge=True) < adversarial_bound(224, 140, 1)


def test_one_axis_shifts_count_one_dimension():
    assert adversarial_bound(224, 140, 1, axes=1) == pytest.approx(83 / 87)
    assert consistency_bound(224, 140, 3, axes=1) == pytest.approx(82 / 88)
    with pytest.raises(ValueError, match="axes must be 1"):
        adversarial_bound(224, 140, 1, axes=3)


def test_bounds_monotone_and_degenerate():
    assert adversarial_bound(224, 140, 0) == 1.0
    assert adversarial_bound(224, 224, 1) == 0.0  # one crop: any shift moves it
    vals = [adversarial_bound(256, k, 1) for k in (100, 150, 200, 250)]
    assert vals == sorted(vals, reverse=True)  # robustness goes down as the crop grows (Fig. 5a)
    with pytest.raises(ValueError, match="k <= n"):
        adversarial_bound(100, 120, 1)


def test_no_selectable_position_bounds_zero():
    # n - k = 1 leaves a 2 x 2 score map with no interior: Algorithm 1 can select nothing stable, even without a shift
    assert adversarial_bound(10, 9, 0, exclude_edge=True) == 0.0
    assert consistency_bound(10, 9, 0, exclude_edge=True) == 0.0
    assert adversarial_bound(10, 9, 0) == 1.0  # counting every crop (the paper's count): no shift, nothing moves
    with pytest.raises(ValueError, match="shift must be >= 0"):
        consistency_bound(224, 140, -1)
