"""Change points in one history: pure functions over a sequence of floats, each naming its method.

A history is one benchmark's metric on one machine, one value per run, ordered by commit. The
method is binary segmentation (Scott & Knott 1974; Vostrikova 1981) with the CUSUM statistic
of a single mean shift (Page 1954; Csörgő & Horváth 1997, "Limit Theorems in Change-Point
Analysis", ch. 1) on the log of the values, made robust in three ways:

* the noise scale comes from the first differences, ``1.4826 * median(|x[i+1] - x[i]|) / sqrt(2)``,
  which neither a step (one large difference) nor a spike (two) moves much;
* the values are winsorized at ``median +- WINSOR * scale`` before the statistic is taken, so one
  disturbed run cannot carry a split on its own (Huber 1964);
* a split needs ``min_size`` runs on each side, so a one-run spike is never a segment of its own.

Each split is tested by permutation, as E-divisive does (Matteson & James 2014, "A Nonparametric
Approach for Multiple Change Point Analysis of Multivariate Data", JASA 109(505)): the largest
statistic over all allowed splits is compared with the largest over shuffled copies of the same
runs, so the p-value holds whatever the noise's shape (process noise here is skewed and
multimodal). Shuffling assumes runs of identical code are exchangeable, which the noise study
found (no drift between consecutive processes). The size of a step is the ratio of the medians
of the segments on either side, with a percentile-bootstrap interval
(:func:`lenet.analysis.stats.bootstrap_ratio_of_medians`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lenet.analysis.stats import Interval, bootstrap_ratio_of_medians

WINSOR = 2.5  # robust standard deviations: wide enough to keep a step's runs, narrow enough to tame a spike
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


def noise_scale(log_values: Sequence[float]) -> float:
    """Robust standard deviation of the noise from first differences (MAD of differences / sqrt(2)).

    A difference of two independent runs has twice the variance of one run; its median absolute
    value estimates that spread robustly (1.4826 * MAD for normal data), and a step or a spike
    changes only one or two of the differences.
    """
    values = np.asarray(log_values, dtype=float)
    if values.size < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(np.diff(values))) / np.sqrt(2.0))


def cusum_statistics(values: np.ndarray) -> np.ndarray:
    """|mean(left) - mean(right)| * sqrt(k (n - k) / n) for every split k = 1..n-1, per row.

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


def _allowed_splits(n: int, boundaries: np.ndarray, min_size: int) -> np.ndarray:
    k = np.arange(1, n)
    return boundaries[1:] & (k >= min_size) & (n - k >= min_size)


def find_change_points(
    values: Sequence[float],
    boundaries: Sequence[bool] | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    alpha: float = DEFAULT_ALPHA,
    min_change: float = 0.0,
    noise_floor: float = 0.0,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> list[ChangePoint]:
    """The steps in a history of positive ``values`` (times or counts, one per run, in commit order).

    ``boundaries[i]`` is True where run i is the first run of its commit (a step can only fall
    between commits; all True when every run is its own commit). A split is kept when its
    permutation p-value is at most ``alpha`` and its size ``|ratio - 1|`` at least ``min_change``;
    ``noise_floor`` is the smallest relative noise assumed (counts of identical code are often
    identical, and a scale of zero would make any difference infinitely sure). The segments on
    either side are split again until nothing more is found; the result is ordered by index.
    """
    raw = np.asarray(values, dtype=float)
    if raw.size == 0 or np.any(raw <= 0) or not np.all(np.isfinite(raw)):
        raise ValueError("a history needs positive, finite values")
    edges = np.ones(raw.size, dtype=bool) if boundaries is None else np.asarray(boundaries, dtype=bool)
    if edges.size != raw.size:
        raise ValueError(f"{edges.size} commit boundaries for {raw.size} values")
    logs = np.log(raw)
    scale = max(noise_scale(logs), noise_floor)
    rng = np.random.default_rng(seed)
    found: list[ChangePoint] = []
    pending = [(0, raw.size)]
    while pending:
        start, stop = pending.pop()
        point = _split_segment(raw, logs, edges, start, stop, scale, min_size, permutations, rng)
        if point is None or point.p_value > alpha or abs(point.ratio.point - 1.0) < min_change:
            continue
        found.append(point)
        pending += [(start, point.index), (point.index, stop)]
    return sorted(found, key=lambda p: p.index)


def _split_segment(
    raw: np.ndarray,
    logs: np.ndarray,
    edges: np.ndarray,
    start: int,
    stop: int,
    scale: float,
    min_size: int,
    permutations: int,
    rng: np.random.Generator,
) -> ChangePoint | None:
    """The best split of ``[start, stop)`` with its p-value and size, or None when none is allowed."""
    n = stop - start
    allowed = _allowed_splits(n, edges[start:stop], min_size)
    if n < 2 * min_size or not allowed.any():
        return None
    segment = logs[start:stop]
    center = float(np.median(segment))
    if scale > 0:
        segment = np.clip(segment, center - WINSOR * scale, center + WINSOR * scale)
    elif np.ptp(segment) == 0:
        return None  # identical values and no floor: nothing can change
    index, p_value = best_split(segment, allowed, permutations, rng)
    cut = start + index
    ratio = bootstrap_ratio_of_medians(raw[cut:stop], raw[start:cut])
    return ChangePoint(index=cut, start=start, stop=stop, p_value=p_value, ratio=ratio)
