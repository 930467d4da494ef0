"""pass@k: the unbiased estimator against hand-computed values, and its aggregation."""

import math

import pytest

from selfdistill.evaluation import compute_metrics, pass_at_k


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (10, 0, 1, 0.0),
        (10, 10, 1, 1.0),
        (10, 3, 1, 0.3),
        (10, 3, 5, 1 - math.comb(7, 5) / math.comb(10, 5)),  # 1 - 21/252
        (5, 1, 5, 1.0),
        (4, 2, 2, 1 - 1 / 6),  # C(2,2)/C(4,2) = 1/6
        (1, 1, 1, 1.0),
    ],
)
def test_pass_at_k_matches_hand_computation(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 5)


def test_metrics_average_over_problems_and_split_by_difficulty():
    problems = [
        {"n": 4, "correct": 2, "difficulty": "easy"},
        {"n": 4, "correct": 0, "difficulty": "hard"},
        {"n": 4, "correct": 4, "difficulty": "easy"},
    ]
    m = compute_metrics(problems)
    assert m["pass@1"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert m["pass@2"] == pytest.approx(((1 - 1 / 6) + 0 + 1) / 3)
    assert "pass@5" not in m  # needs 5 samples; only 4 exist
    assert m["by_difficulty"]["easy"]["pass@1"] == pytest.approx(0.75)
    assert m["by_difficulty"]["hard"]["count"] == 1
