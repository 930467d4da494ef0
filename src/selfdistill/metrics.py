"""The statistics every stage shares: pass@k, its aggregation, and the paired comparisons
of two models on the same problems (bootstrap interval, win/loss counts, exact sign test).

pass@k is the unbiased estimator 1 - C(n-c, k)/C(n, k) for a problem with n samples of
which c passed, averaged over problems. Comparisons are paired: both models are scored on
the same problems, and what is resampled or counted is the per-problem difference.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

K_VALUES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with n samples of which c are correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def ks_for(n_min: int) -> list[int]:
    """The k values reported when every problem has at least n_min samples."""
    return [k for k in K_VALUES if k <= n_min]


def per_problem_pass(problems: list[dict[str, Any]], k: int) -> np.ndarray:
    """pass@k of each problem record (fields n and correct), in order."""
    return np.array([pass_at_k(p["n"], p["correct"], k) for p in problems], dtype=float)


def subsets(problems: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """"overall", then one subset per source when the problems come from several (a
    `humaneval+leetcode:eval` set: "humaneval", "leetcode"), then one per difficulty. A
    problem without a difficulty is "unknown" in a one-source set; in a mixed set its
    source subset already holds it."""
    out: dict[str, list[dict[str, Any]]] = {"overall": list(problems)}
    sources: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in problems:
        if p.get("source"):
            sources[p["source"]].append(p)
    mixed = len(sources) > 1
    if mixed:
        out.update(sorted(sources.items()))
    by_diff: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in problems:
        if p.get("difficulty") or not mixed:
            by_diff[p.get("difficulty") or "unknown"].append(p)
    out.update(sorted(by_diff.items()))
    return out


def compute_metrics(problems: list[dict[str, Any]]) -> dict[str, Any]:
    """pass@k overall and per subset (`subsets`: by source in a mixed set, by difficulty)
    for every k the smallest n allows; the subsets are under "by_difficulty"."""
    if not problems:
        return {"count": 0}
    min_n = min(p["n"] for p in problems)
    ks = ks_for(min_n)

    def summarise(group: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"count": len(group)}
        for k in ks:
            out[f"pass@{k}"] = float(per_problem_pass(group, k).mean())
        return out

    groups = subsets(problems)
    metrics = summarise(groups.pop("overall"))
    metrics["by_difficulty"] = {d: summarise(g) for d, g in groups.items()}
    metrics["n_min"] = min_n
    return metrics


def paired_bootstrap(a: np.ndarray, b: np.ndarray, samples: int, seed: int) -> tuple[float, float, float]:
    """Mean of b - a and its 95% percentile interval over problems resampled with replacement."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if len(diff) == 0:
        raise ValueError("no problems to compare")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(samples, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test of wins vs losses (ties dropped): the probability, under
    "neither model is better", of a split at least this uneven. With one sample per problem
    (greedy or n=1) a win is a problem only b solved, and this is the exact McNemar test."""
    m = wins + losses
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(0, min(wins, losses) + 1)) / 2 ** m
    return float(min(1.0, 2 * tail))


def paired_comparison(a: list[dict[str, Any]], b: list[dict[str, Any]], k: int,
                      samples: int, seed: int) -> dict[str, Any]:
    """b against a on the same problems (records in the same task order) at pass@k: means,
    the bootstrap interval of the difference, per-problem wins/losses/ties and the sign test.
    Where neither model solved anything the interval is meaningless and is left out."""
    if [p["task_id"] for p in a] != [p["task_id"] for p in b]:
        raise ValueError("paired comparison needs the same problems in the same order")
    pa, pb = per_problem_pass(a, k), per_problem_pass(b, k)
    wins, losses = int((pb > pa).sum()), int((pb < pa).sum())
    row: dict[str, Any] = {"problems": len(a), "k": k, "a": float(pa.mean()), "b": float(pb.mean()),
                           "wins": wins, "losses": losses, "ties": len(a) - wins - losses,
                           "sign_test_p": sign_test(wins, losses)}
    if not (pa.any() or pb.any()):
        row.update(delta=0.0, low=None, high=None, note="no solved problems")
        return row
    delta, low, high = paired_bootstrap(pa, pb, samples, seed)
    row.update(delta=delta, low=low, high=high, note="")
    return row


def format_interval(row: dict[str, Any]) -> str:
    """"+1.2 [-0.5, +3.0]" in percentage points, or the row's note where it has no interval."""
    if row.get("low") is None:
        return row.get("note") or "n/a"
    return f"{100 * row['delta']:+.1f} [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"
