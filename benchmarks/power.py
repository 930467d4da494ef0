"""Minimum detectable pass@1 difference of a paired base-vs-SSD comparison (docs/experiments.md).

Model: problem i has a true pass rate p_i per model, mean mu over problems; a share `s` of
the Bernoulli variance mu(1 - mu) lies between problems (Var p_i = s mu(1 - mu)), and the two
models' true rates correlate `rho`. Each model's observed rate on a problem averages n
responses. The per-problem difference d_i then has variance

    mu(1 - mu) * (2 s (1 - rho) + 2 (1 - s) / n)

and the mean over N problems is detected at alpha 0.05 (two-sided) with 80% power when the
true difference is at least (z_0.975 + z_0.8) * sqrt(Var d / N). Several benchmarks pooled
into one comparison add their variances, each weighted by its share of the problems.

    python benchmarks/power.py                      # the planning assumptions
    python benchmarks/power.py --run runs/powered-0.5b --t-eval 0.6
        # s re-estimated from the base model's measured cell at that T_eval
        # (Var of observed rates = s mu(1-mu) + (1-s) mu(1-mu) / n), per source
    python benchmarks/power.py --run runs/powered-0.5b --t-eval 0.6 --against 0.8
        # and a reference point for rho: how the same model's per-problem rates at two
        # T_eval correlate, observed and corrected for the noise of n responses (the
        # observed correlation of two noisy rates understates that of the true ones)
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

Z = 1.959964 + 0.841621  # alpha 0.05 two-sided, power 0.8

# planning assumptions: problems and greedy base pass@1 measured before (README)
PLANNED = {"humaneval": (164, 0.58), "leetcode": (161, 0.11)}


def variance(mu: float, share: float, rho: float, n: int) -> float:
    return mu * (1 - mu) * (2 * share * (1 - rho) + 2 * (1 - share) / n)


def mde(parts: dict[str, tuple[int, float, float]], rho: float, n: int) -> float:
    """parts: name -> (problems, mu, share); the pooled mean difference's MDE."""
    total = sum(count for count, _, _ in parts.values())
    var = sum(count * variance(mu, share, rho, n) for count, mu, share in parts.values()) / total ** 2
    return Z * math.sqrt(var)


def _rates(run: Path, t_eval: float) -> dict[str, tuple[str, float, int]]:
    """task_id -> (source, observed pass rate, responses) of the base grid's cell at t_eval."""
    cell = run / "base_eval" / f"T{t_eval:g}" / "results.json"
    return {p["task_id"]: (p.get("source") or "all", p["correct"] / p["n"], p["n"])
            for p in json.loads(cell.read_text())["problems"]}


def _shares(rates: dict[str, tuple[str, float, int]]) -> dict[str, tuple[int, float, float]]:
    """(problems, mu, share) per source of one cell's per-problem rates."""
    n = min(count for _, _, count in rates.values())
    out = {}
    for source in sorted({src for src, _, _ in rates.values()}):
        values = [rate for src, rate, _ in rates.values() if src == source]
        mu = sum(values) / len(values)
        var = sum((r - mu) ** 2 for r in values) / (len(values) - 1)
        bern = mu * (1 - mu)
        # Var(observed) = s*bern + (1-s)*bern/n  ->  s = (Var/bern - 1/n) / (1 - 1/n)
        share = min(1.0, max(0.0, (var / bern - 1 / n) / (1 - 1 / n))) if bern > 0 and n > 1 else 0.5
        out[source] = (len(values), mu, share)
    return out


def measured(run: Path, t_eval: float) -> dict[str, tuple[int, float, float]]:
    """(problems, mu, share) per source from the base grid's cell at t_eval."""
    return _shares(_rates(run, t_eval))


def _corr(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def correlation(run: Path, t_a: float, t_b: float) -> dict[str, tuple[int, float, float]]:
    """Per source and pooled: (problems, observed correlation of per-problem rates between
    the base cells at t_a and t_b, the same corrected for attenuation). Each cell's
    reliability is the share of its observed variance that lies between problems,
    s / (s + (1 - s) / n) with s from `measured`."""
    a, b = _rates(run, t_a), _rates(run, t_b)
    common = [k for k in a if k in b]
    share_a, share_b = _shares(a), _shares(b)
    out = {}
    for source in sorted({a[k][0] for k in common}) + ["pooled"]:
        keys = [k for k in common if source == "pooled" or a[k][0] == source]
        r = _corr([a[k][1] for k in keys], [b[k][1] for k in keys])
        if source == "pooled":
            out[source] = (len(keys), r, float("nan"))
            continue
        rel = 1.0
        for shares, rates in ((share_a, a), (share_b, b)):
            s, n = shares[source][2], min(rates[k][2] for k in keys)
            rel *= s / (s + (1 - s) / n) if s > 0 else float("nan")
        out[source] = (len(keys), r, max(-1.0, min(1.0, r / math.sqrt(rel))) if rel > 0 else float("nan"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rho", type=float, default=0.9, help="between-model correlation of true rates")
    ap.add_argument("--share", type=float, default=0.5, help="problem-level variance share (planning)")
    ap.add_argument("--n", default="1,4,8", help="responses per problem to tabulate")
    ap.add_argument("--run", type=Path, help="estimate mu and the share from this run's base grid")
    ap.add_argument("--t-eval", type=float, default=0.6, help="the base cell to estimate from")
    ap.add_argument("--against", type=float, help="with --run: correlate the base cells at --t-eval and this T_eval")
    args = ap.parse_args()
    if args.against is not None and not args.run:
        ap.error("--against needs --run")
    if args.run:
        parts = measured(args.run, args.t_eval)
        print(f"measured from {args.run}/base_eval/T{args.t_eval:g} (rho {args.rho} assumed):")
    else:
        parts = {k: (count, mu, args.share) for k, (count, mu) in PLANNED.items()}
        print(f"planning assumptions: share {args.share}, rho {args.rho}:")
    ns = [int(x) for x in args.n.split(",")]
    print("| benchmark | problems | mean pass@1 | share | " + " | ".join(f"MDE n={n}" for n in ns) + " |")
    print("|---|---|---|---|" + "---|" * len(ns))
    for name, part in parts.items():
        print(f"| {name} | {part[0]} | {100 * part[1]:.1f} | {part[2]:.2f} | "
              + " | ".join(f"{100 * mde({name: part}, args.rho, n):.1f}" for n in ns) + " |")
    if len(parts) > 1:
        count = sum(p[0] for p in parts.values())
        print(f"| pooled | {count} | | | " + " | ".join(f"{100 * mde(parts, args.rho, n):.1f}" for n in ns) + " |")
    if args.against is not None:
        print(f"\nper-problem pass rates of the base model, T {args.t_eval:g} against T {args.against:g}:")
        print("| benchmark | problems | observed correlation | corrected for n |")
        print("|---|---|---|---|")
        for name, (count, r, true_r) in correlation(args.run, args.t_eval, args.against).items():
            print(f"| {name} | {count} | {r:.3f} | " + ("" if math.isnan(true_r) else f"{true_r:.3f}") + " |")


if __name__ == "__main__":
    main()
