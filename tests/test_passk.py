"""pass@k: the unbiased estimator against hand-computed values, and its aggregation."""

import math

import pytest

from selfdistill.metrics import (
    compute_metrics,
    format_interval,
    paired_comparison,
    pass_at_k,
    sign_test,
)


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


def test_a_set_of_several_sources_is_broken_down_by_source_and_by_difficulty():
    problems = [
        {"n": 2, "correct": 2, "source": "humaneval", "difficulty": None},
        {"n": 2, "correct": 1, "source": "leetcode", "difficulty": "easy"},
        {"n": 2, "correct": 0, "source": "leetcode", "difficulty": "hard"},
    ]
    m = compute_metrics(problems)
    assert list(m["by_difficulty"]) == ["humaneval", "leetcode", "easy", "hard"]
    assert m["by_difficulty"]["humaneval"]["pass@1"] == 1.0 and m["by_difficulty"]["leetcode"]["pass@1"] == 0.25
    # one source: a problem without a difficulty is "unknown", and no source subset repeats "overall"
    assert list(compute_metrics(problems[:1])["by_difficulty"]) == ["unknown"]


def _records(outcomes, n=1):
    return [{"task_id": f"t{i}", "n": n, "correct": c, "difficulty": "easy"} for i, c in enumerate(outcomes)]


def test_sign_test_is_exact():
    # 8 wins, 1 loss: P(X <= 1 | Bin(9, 1/2)) * 2 = 2 * (1 + 9) / 512
    assert sign_test(8, 1) == pytest.approx(20 / 512)
    assert sign_test(3, 3) == 1.0
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)


def test_paired_comparison_counts_wins_and_losses():
    a = _records([1, 0, 0, 1, 0])
    b = _records([1, 1, 1, 0, 0])
    row = paired_comparison(a, b, k=1, samples=500, seed=0)
    assert (row["wins"], row["losses"], row["ties"]) == (2, 1, 2)
    assert row["delta"] == pytest.approx(0.2)
    assert row["low"] <= row["delta"] <= row["high"]
    assert row["sign_test_p"] == pytest.approx(sign_test(2, 1))


def test_no_solved_problems_is_said_not_a_degenerate_interval():
    row = paired_comparison(_records([0, 0, 0]), _records([0, 0, 0]), k=1, samples=100, seed=0)
    assert row["low"] is None and row["note"] == "no solved problems"
    assert format_interval(row) == "no solved problems"


def test_paired_comparison_refuses_unpaired_records():
    with pytest.raises(ValueError):
        paired_comparison(_records([1, 0]), _records([1, 0])[::-1], k=1, samples=10, seed=0)
