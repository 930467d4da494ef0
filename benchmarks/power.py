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


def measured(run: Path, t_eval: float) -> dict[str, tuple[int, float, float]]:
    """(problems, mu, share) per source from the base grid's cell at t_eval."""
    cell = run / "base_eval" / f"T{t_eval:g}" / "results.json"
    problems = json.loads(cell.read_text())["problems"]
    out = {}
    for source in sorted({p.get("source") or "all" for p in problems}):
        rates = [p["correct"] / p["n"] for p in problems if (p.get("source") or "all") == source]
        n = min(p["n"] for p in problems)
        mu = sum(rates) / len(rates)
        var = sum((r - mu) ** 2 for r in rates) / (len(rates) - 1)
        bern = mu * (1 - mu)
        # Var(observed) = s*bern + (1-s)*bern/n  ->  s = (Var/bern - 1/n) / (1 - 1/n)
        share = min(1.0, max(0.0, (var / bern - 1 / n) / (1 - 1 / n))) if bern > 0 and n > 1 else 0.5
        out[source] = (len(rates), mu, share)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rho", type=float, default=0.9, help="between-model correlation of true rates")
    ap.add_argument("--share", type=float, default=0.5, help="problem-level variance share (planning)")
    ap.add_argument("--n", default="1,4,8", help="responses per problem to tabulate")
    ap.add_argument("--run", type=Path, help="estimate mu and the share from this run's base grid")
    ap.add_argument("--t-eval", type=float, default=0.6, help="the base cell to estimate from")
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
