"""Statistics on literal numbers with known answers."""

import numpy as np
import pytest

from lenet.analysis.stats import (
    EXACT_ABOVE,
    bootstrap_medians,
    bootstrap_ratio_of_medians,
    iqr,
    mann_whitney_p,
    median,
    minimal_detectable_change,
    null_change_quantile,
    quartiles,
    robust_cv,
)


def test_median_of_odd_and_even_counts():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="no samples"):
        median([])


def test_quartiles_interpolate_linearly():
    # type 7: positions 0.25*(n-1) and 0.75*(n-1) of the sorted sample
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)
    assert quartiles([1.0, 2.0, 3.0, 4.0]) == (1.75, 3.25)
    assert iqr([1.0, 2.0, 3.0, 4.0]) == 1.5


def test_ratio_of_identical_constant_samples_is_exactly_one():
    interval = bootstrap_ratio_of_medians([2.0, 2.0, 2.0], [2.0, 2.0, 2.0])
    assert (interval.point, interval.low, interval.high) == (1.0, 1.0, 1.0)


def test_ratio_of_scaled_samples_has_the_scale_as_point():
    base = [1.0, 1.1, 0.9, 1.05, 0.95]
    interval = bootstrap_ratio_of_medians([2 * x for x in base], base)
    assert interval.point == pytest.approx(2.0)
    assert interval.low <= 2.0 <= interval.high
    assert interval.low > 1.5 and interval.high < 2.7


def test_one_sample_on_a_side_gives_no_spread():
    interval = bootstrap_ratio_of_medians([3.0], [1.0, 1.5, 2.0])
    assert interval.point == interval.low == interval.high == 2.0


def test_bootstrap_is_deterministic():
    a, b = [1.0, 1.2, 0.9, 1.4], [1.1, 1.0, 1.3, 0.8]
    assert bootstrap_ratio_of_medians(a, b) == bootstrap_ratio_of_medians(a, b)


def test_exact_median_distribution_matches_resampling():
    """Above EXACT_ABOVE samples the bootstrap medians come from their exact distribution."""
    values = np.random.default_rng(1).lognormal(0.0, 0.3, 2 * EXACT_ABOVE + 1)
    exact = bootstrap_medians(values, 20_000, np.random.default_rng(2))
    resampled = np.median(values[np.random.default_rng(3).integers(0, values.size, (20_000, values.size))], axis=1)
    assert np.quantile(exact, [0.025, 0.5, 0.975]) == pytest.approx(
        np.quantile(resampled, [0.025, 0.5, 0.975]), rel=0.01
    )


def test_robust_cv_ignores_one_slow_process():
    assert robust_cv([1.0, 1.0, 1.0, 1.0]) == 0.0
    # MAD of [0.9, 1.0, 1.0, 1.1, 5.0] is 0.1 around the median 1.0
    assert robust_cv([0.9, 1.0, 1.0, 1.1, 5.0]) == pytest.approx(0.14826)


def test_mann_whitney_on_separated_and_identical_groups():
    # 4 vs 4 fully separated: exact two-sided p = 2 / C(8, 4) = 2/70
    assert mann_whitney_p([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2 / 70)
    assert mann_whitney_p([1, 1, 1], [1, 1, 1]) == 1.0
    assert mann_whitney_p([1.0], [2.0, 3.0]) == 1.0


def test_null_change_quantile_grows_with_noise_and_shrinks_with_processes():
    rng = np.random.default_rng(0)
    quiet = 1 + 0.01 * rng.standard_normal(40)
    noisy = 1 + 0.10 * rng.standard_normal(40)
    assert null_change_quantile(quiet, 8, 8) < null_change_quantile(noisy, 8, 8)
    assert null_change_quantile(noisy, 20, 20) < null_change_quantile(noisy, 4, 4)


def test_minimal_detectable_change_follows_the_normal_approximation():
    # z(0.975) + z(0.8) = 1.95996 + 0.84162 = 2.80158; * 1.2533 * 0.1 * sqrt(2/8)
    assert minimal_detectable_change(0.1, 8, 8, alpha=0.05) == pytest.approx(2.80158 * 1.2533 * 0.1 * 0.5, rel=1e-4)
