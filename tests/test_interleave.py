"""ABBA order: both sides at the same average position in time."""

import pytest

from lenet.interleave import abba_order, interleave


def test_abba_blocks_alternate_and_balance():
    assert abba_order(4, "baseline", "candidate") == ["baseline", "candidate", "candidate", "baseline"] * 2
    odd = abba_order(3)
    assert odd == ["a", "b", "b", "a", "a", "b"] and odd.count("a") == odd.count("b") == 3
    assert abba_order(0) == []
    with pytest.raises(ValueError, match="per_side -1"):
        abba_order(-1)


def test_both_sides_sit_at_the_same_mean_position_after_whole_blocks():
    order = abba_order(8)
    positions = {side: [i for i, s in enumerate(order) if s == side] for side in "ab"}
    assert sum(positions["a"]) == sum(positions["b"])


def test_interleave_calls_each_side_in_order_and_keeps_results_apart():
    calls = []
    a, b = interleave(lambda: calls.append("a") or len(calls), lambda: calls.append("b") or -len(calls), 2)
    assert calls == ["a", "b", "b", "a"]
    assert a == [1, 4] and b == [-2, -3]
