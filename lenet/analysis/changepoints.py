"""Change points in one history: pure functions over a sequence of floats, each naming its method.

A history is one benchmark's metric on one machine, one value per run, ordered by commit. The
method is binary segmentation (Scott & Knott 1974; Vostrikova 1981) with a rank CUSUM: the
standardized difference of mean ranks on either side of a split, which is the Mann-Whitney
statistic of that split, and Pettitt's change-point test ("A non-parametric approach to the
change-point problem", Applied Statistics 28(2), 1979) weighted so that splits near the ends are
not penalized. Ranks make it robust the way process noise here needs: the medians of identical
code are skewed and bimodal (one process in ten runs 50% slow), and a run's influence on a rank
statistic is bounded, so one disturbed run cannot carry a split. A split also needs
``min_size`` runs on each side, so a one-run spike is never a segment of its own.

A commit may have several runs (boundaries say where each commit's runs start): each run is one
value, and a split falls only between commits. The unit is the run (one process), never a round
inside it: rounds of one process share that process's slowness, so pooling them would read a
process-to-process spread of 6-25% as the 1-2% standard error of one process's median and turn
noise into steps. Several runs per commit is what buys sensitivity (results/studies/changes_study.md).

Each split is tested by permutation, as E-divisive does (Matteson & James 2014, "A Nonparametric
Approach for Multiple Change Point Analysis of Multivariate Data", JASA 109(505)): the largest
statistic over all allowed splits is compared with the largest over shuffled copies of the same
runs, so the p-value holds whatever the noise's shape. Shuffling assumes runs of identical code
are exchangeable, which the noise study found (no drift between consecutive processes). A split
found is placed by :func:`quantile_split` (about the lower quartile for times, whose noise is
one-sided; about the median for counts). The size of a step is the ratio of the medians of the
segments on either side, with a percentile-bootstrap interval
(:func:`lenet.analysis.stats.bootstrap_ratio_of_medians`); a split smaller than ``min_change``
is not reported, however sure (counts see 0.01% changes that matter to nobody).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from lenet.analysis.stats import Interval, bootstrap_ratio_of_medians

DEFAULT_PERMUTATIONS = 999
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_SIZE = 3


@dataclass(frozen=True)
class ChangePoint:
    """A step before run ``index`` (runs ``[start, index)`` against ``[index, stop)``)."""

    index: int
    start: int
    stop: int
    p_value: float
    ratio: Interval  # median after / median before, with its interval

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value


def cusum_statistics(values: np.ndarray) -> np.ndarray:
    """|mean(left) - mean(right)| * sqrt(k (n - k) / n) for every split k = 1..n-1, per row (of ranks here).

    ``values`` is 2-D (one history per row, so permutations are computed together); column
    ``k - 1`` holds the statistic of the split before index ``k``.
    """
    n = values.shape[1]
    k = np.arange(1, n)
    prefix = np.cumsum(values, axis=1)[:, :-1]
    total = prefix[:, -1:] + values[:, -1:]
    left_mean = prefix / k
    right_mean = (total - prefix) / (n - k)
    return np.abs(left_mean - right_mean) * np.sqrt(k * (n - k) / n)


def best_split(
    values: np.ndarray,
    allowed: np.ndarray,
    permutations: int,
    rng: np.random.Generator,
) -> tuple[int, float]:
    """The split (index) with the largest CUSUM statistic among ``allowed`` and its permutation p-value.

    ``allowed[k - 1]`` says whether a split before index k may be taken (enough runs on each side,
    and a commit boundary). The p-value is (1 + #{permuted max >= observed}) / (1 + permutations).
    """
    observed = cusum_statistics(values[np.newaxis, :])[0]
    observed = np.where(allowed, observed, -np.inf)
    index = int(np.argmax(observed)) + 1
    shuffled = np.stack([rng.permutation(values) for _ in range(permutations)])
    null_max = np.max(np.where(allowed, cusum_statistics(shuffled), -np.inf), axis=1)
    # A tiny tolerance so that exact ties (identical counts) do not read as significant.
    exceed = int(np.sum(null_max >= observed[index - 1] * (1 - 1e-12)))
    return index, (1 + exceed) / (1 + permutations)


def quantile_split(values: np.ndarray, allowed: np.ndarray, quantile: float = 0.5) -> int:
    """The allowed split that minimizes the total check loss about each side's ``quantile``.

    The check (pinball) loss of quantile regression (Koenker & Bassett 1978, "Regression
    Quantiles", Econometrica 46(1)): at 0.5 it is half the absolute deviation from each side's
    median (the L1 cost of ruptures' ``CostL1``, the maximum-likelihood split for Laplace noise),
    which places a clean step at its exact run where the rank statistic's weighting can put its
    maximum a run or two off. A lower quantile places a step better when the noise is one-sided,
    as process noise is here: a process is slowed by the machine, never run faster than its code
    allows, so the lower part of the distribution is tight (a quantile's error goes with
    ``q (1 - q) / density(q)^2``) and a slow process moves the estimate no more than any other run.
    """
    costs = np.full(values.size - 1, np.inf)
    for k in np.flatnonzero(allowed) + 1:
        costs[k - 1] = sum(_check_loss(side, quantile) for side in (values[:k], values[k:]))
    return int(np.argmin(costs)) + 1


def l1_split(values: np.ndarray, allowed: np.ndarray) -> int:
    """:func:`quantile_split` about the medians: the least-absolute-deviation split."""
    return quantile_split(values, allowed, 0.5)


def _check_loss(values: np.ndarray, quantile: float) -> float:
    residuals = values - np.quantile(values, quantile)
    return float(np.sum(np.where(residuals >= 0, quantile * residuals, (quantile - 1) * residuals)))


def _allowed_splits(n: int, boundaries: np.ndarray, min_size: int) -> np.ndarray:
    k = np.arange(1, n)
    return boundaries[1:] & (k >= min_size) & (n - k >= min_size)


def find_change_points(
    values: Sequence[float],
    boundaries: Sequence[bool] | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    alpha: float = DEFAULT_ALPHA,
    min_change: float = 0.0,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    quantile: float = 0.5,
) -> list[ChangePoint]:
    """The steps in a history of positive ``values`` (times or counts, one per run, in commit order).

    ``boundaries[i]`` is True where run i is the first run of its commit (a step can only fall
    between commits; all True when every run is its own commit). A split is kept when its
    permutation p-value is at most ``alpha`` and its size ``|ratio - 1|`` at least ``min_change``;
    it is placed by :func:`quantile_split` about ``quantile``. The segments on either side are
    split again until nothing more is found; the result is ordered by index.
    """
    raw = np.asarray(values, dtype=float)
    if raw.size == 0 or np.any(raw <= 0) or not np.all(np.isfinite(raw)):
        raise ValueError("a history needs positive, finite values")
    edges = np.ones(raw.size, dtype=bool) if boundaries is None else np.asarray(boundaries, dtype=bool)
    if edges.size != raw.size:
        raise ValueError(f"{edges.size} commit boundaries for {raw.size} values")
    rng = np.random.default_rng(seed)
    found: list[ChangePoint] = []
    pending = [(0, raw.size)]
    while pending:
        start, stop = pending.pop()
        point = _split_segment(raw, edges, (start, stop), min_size, (permutations, alpha), rng, quantile)
        if point is None or abs(point.ratio.point - 1.0) < min_change:
            continue
        found.append(point)
        pending += [(start, point.index), (point.index, stop)]
    return sorted(found, key=lambda p: p.index)


def _split_segment(
    raw: np.ndarray,
    edges: np.ndarray,
    segment: tuple[int, int],
    min_size: int,
    test: tuple[int, float],
    rng: np.random.Generator,
    quantile: float,
) -> ChangePoint | None:
    """The best split of ``[start, stop)`` with its p-value and size; None when none is allowed or when its
    p-value (``test``: permutations, alpha) is above alpha, before the costlier placement and interval."""
    permutations, alpha = test
    start, stop = segment
    n = stop - start
    allowed = _allowed_splits(n, edges[start:stop], min_size)
    if n < 2 * min_size or not allowed.any():
        return None
    if np.ptp(raw[start:stop]) == 0:
        return None  # identical values (counts of unchanged code): nothing changed
    ranks = rankdata(raw[start:stop])  # ties share their mean rank
    _, p_value = best_split(ranks, allowed, permutations, rng)
    if p_value > alpha:
        return None
    cut = start + quantile_split(np.log(raw[start:stop]), allowed, quantile)
    ratio = bootstrap_ratio_of_medians(raw[cut:stop], raw[start:cut])
    return ChangePoint(index=cut, start=start, stop=stop, p_value=p_value, ratio=ratio)
