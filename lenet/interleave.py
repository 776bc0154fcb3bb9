"""The order in which two sides of a comparison take turns: ABBA blocks.

Alternating A B B A (then A B B A again) puts both sides at the same average position
in time, so a load that drifts over seconds or minutes falls on both alike, and neither
side always runs first (asv's ``--interleave-rounds``, pyperf's alternating workers).
Every A/B loop in the project, from process-level A/B runs to in-process study blocks,
takes its order from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


def abba_order(per_side: int, first: str = "a", second: str = "b") -> list[str]:
    """``per_side`` turns for each side in ABBA blocks; an odd count ends its last block evenly.

    >>> abba_order(3, "baseline", "candidate")
    ['baseline', 'candidate', 'candidate', 'baseline', 'baseline', 'candidate']
    """
    if per_side < 0:
        raise ValueError(f"per_side {per_side} must be >= 0")
    block = (first, second, second, first)
    return [block[index % 4] for index in range(2 * per_side)]


def interleave(run_a: Callable[[], T], run_b: Callable[[], U], per_side: int) -> tuple[list[T], list[U]]:
    """Call ``run_a`` and ``run_b`` ``per_side`` times each in ABBA order; their results, per side in call order."""
    results_a: list[T] = []
    results_b: list[U] = []
    for side in abba_order(per_side):
        if side == "a":
            results_a.append(run_a())
        else:
            results_b.append(run_b())
    return results_a, results_b
