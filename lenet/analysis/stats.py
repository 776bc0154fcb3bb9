"""Statistics as pure functions over sequences of floats; each names its method.

Samples are times in seconds. Which samples are used matters more than which
formula: one process's rounds are not independent evidence (a process is the unit
of evidence on a shared machine), so callers pass process medians when they have
several processes, and label intervals from one process's rounds as optimistic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, mannwhitneyu, norm

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0  # fixed: the same data always gives the same interval


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def median(samples: Sequence[float]) -> float:
    """The sample median (mean of the two middle values for even counts)."""
    if len(samples) == 0:
        raise ValueError("median of no samples")
    return float(np.median(np.asarray(samples, dtype=float)))


def quartiles(samples: Sequence[float]) -> tuple[float, float]:
    """(Q1, Q3) by linear interpolation between order statistics (Hyndman & Fan type 7, numpy's default)."""
    if len(samples) == 0:
        raise ValueError("quartiles of no samples")
    q1, q3 = np.percentile(np.asarray(samples, dtype=float), [25, 75])
    return float(q1), float(q3)


def iqr(samples: Sequence[float]) -> float:
    q1, q3 = quartiles(samples)
    return q3 - q1


EXACT_ABOVE = 200  # samples per side above which bootstrap medians are drawn from their exact distribution


def bootstrap_medians(samples: Sequence[float], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``resamples`` medians of bootstrap resamples of ``samples``.

    Up to EXACT_ABOVE samples: by resampling. Above: drawn from the exact bootstrap
    distribution of the (lower) sample median, which needs no resampling: the
    median of a resample is <= x_(j) exactly when at least ceil(n/2) of its n draws
    are, so P(M* <= x_(j)) = P(Binomial(n, j/n) >= ceil(n/2)) (Efron 1982, "The
    Jackknife, the Bootstrap and Other Resampling Plans", section 10.3). This costs
    O(n) instead of O(n x resamples), so a report over thousands of rounds stays fast.
    """
    values = np.asarray(samples, dtype=float)
    n = values.size
    if n <= EXACT_ABOVE:
        return np.median(values[rng.integers(0, n, size=(resamples, n))], axis=1)
    ordered = np.sort(values)
    k = (n + 1) // 2  # the lower median's rank
    cdf = binom.sf(k - 1, n, np.arange(1, n + 1) / n)
    index = np.searchsorted(cdf, rng.random(resamples), side="left")
    return ordered[np.minimum(index, n - 1)]


def bootstrap_ratio_of_medians(
    numerator: Sequence[float],
    denominator: Sequence[float],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """median(numerator) / median(denominator) with a percentile-bootstrap interval.

    Each side is resampled with replacement independently (Efron & Tibshirani 1993,
    ch. 13, percentile interval). With one sample on either side the interval is
    the point itself: no spread can be estimated from one value.
    """
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    if num.size == 0 or den.size == 0:
        raise ValueError("bootstrap needs at least one sample on each side")
    point = float(np.median(num) / np.median(den))
    if num.size == 1 or den.size == 1:
        return Interval(point, point, point)
    rng = np.random.default_rng(seed)
    ratios = bootstrap_medians(num, resamples, rng) / bootstrap_medians(den, resamples, rng)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return Interval(point, float(low), float(high))


def bootstrap_ratio_of_quantiles(
    numerator: Sequence[float],
    denominator: Sequence[float],
    quantile: float,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """quantile(numerator) / quantile(denominator) with a percentile-bootstrap interval, each side resampled
    on its own as :func:`bootstrap_ratio_of_medians` does; with one value on a side the interval is the point.
    The bisector places time steps about the lower quartile, where one-sided process noise is tightest."""
    num, den = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if num.size == 0 or den.size == 0:
        raise ValueError("bootstrap needs at least one sample on each side")
    point = float(np.quantile(num, quantile) / np.quantile(den, quantile))
    if num.size == 1 or den.size == 1:
        return Interval(point, point, point)
    rng = np.random.default_rng(seed)
    tops = np.quantile(num[rng.integers(0, num.size, (resamples, num.size))], quantile, axis=1)
    bottoms = np.quantile(den[rng.integers(0, den.size, (resamples, den.size))], quantile, axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(tops / bottoms, [alpha, 1.0 - alpha])
    return Interval(point, float(low), float(high))


def robust_cv(samples: Sequence[float]) -> float:
    """Coefficient of variation from the median absolute deviation: 1.4826 * MAD / median.

    1.4826 makes the MAD estimate the standard deviation of normal data; unlike the
    standard deviation it ignores the occasional process that a noisy machine slows down.
    """
    values = np.asarray(samples, dtype=float)
    if values.size < 2:
        return float("nan")
    center = np.median(values)
    return float(1.4826 * np.median(np.abs(values - center)) / center)


def mann_whitney_p(first: Sequence[float], second: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U test p-value (exact for small samples without ties; scipy's method choice)."""
    if len(first) < 2 or len(second) < 2:
        return 1.0
    if np.ptp(np.concatenate([np.asarray(first, float), np.asarray(second, float)])) == 0.0:
        return 1.0  # every sample equal: no evidence of any difference
    return float(mannwhitneyu(first, second, alternative="two-sided").pvalue)


def null_change_quantile(
    samples: Sequence[float],
    n_first: int,
    n_second: int,
    quantile: float = 0.99,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> float:
    """How large |ratio of medians - 1| gets by noise alone: its ``quantile`` when two groups of
    ``n_first`` and ``n_second`` processes are drawn from the same A/A ``samples``.

    A change smaller than this is what identical code shows ``1 - quantile`` of the time;
    it is the data-derived practical threshold of a benchmark.
    """
    values = np.asarray(samples, dtype=float)
    if values.size < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    first = np.median(values[rng.integers(0, values.size, size=(resamples, n_first))], axis=1)
    second = np.median(values[rng.integers(0, values.size, size=(resamples, n_second))], axis=1)
    return float(np.quantile(np.abs(second / first - 1.0), quantile))


def minimal_detectable_change(cv: float, n_first: int, n_second: int, alpha: float, power: float = 0.8) -> float:
    """Smallest relative change of the median that a two-sided test at ``alpha`` detects with
    ``power``, given the process-to-process ``cv`` (normal approximation; the factor
    sqrt(pi/2) ~ 1.2533 is the median's standard error relative to the mean's)."""
    if not np.isfinite(cv) or n_first < 1 or n_second < 1:
        return float("nan")
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return float(z * 1.2533 * cv * np.sqrt(1 / n_first + 1 / n_second))
