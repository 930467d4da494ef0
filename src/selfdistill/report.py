"""report.md for a run: base vs SSD pass@k with paired bootstrap 95% intervals.

The interval of a difference resamples problems with replacement (the same problems for
both models, hence paired) and takes the 2.5th and 97.5th percentiles of the mean
per-problem difference in pass@k.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from selfdistill.evaluation import pass_at_k
from selfdistill.files import atomic_write_text


def paired_bootstrap(a: np.ndarray, b: np.ndarray, samples: int, seed: int) -> tuple[float, float, float]:
    """Mean of b - a and its 95% interval over problems resampled with replacement."""
    diff = b - a
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(samples, len(diff)))
    means = diff[idx].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def compare(base: dict[str, Any], ssd: dict[str, Any], samples: int, seed: int) -> list[dict[str, Any]]:
    """Rows (subset, k, base, ssd, delta, low, high) over problems both runs judged."""
    b = {p["task_id"]: p for p in base["problems"]}
    s = {p["task_id"]: p for p in ssd["problems"]}
    common = [t for t in b if t in s]
    n_min = min(min(b[t]["n"] for t in common), min(s[t]["n"] for t in common))
    ks = [k for k in (1, 2, 5, 10, 20, 50, 100) if k <= n_min]
    subsets = {"overall": common}
    for t in common:
        subsets.setdefault(b[t]["difficulty"] or "unknown", []).append(t)
    rows = []
    for name, ids in subsets.items():
        for k in ks:
            pb = np.array([pass_at_k(b[t]["n"], b[t]["correct"], k) for t in ids])
            ps = np.array([pass_at_k(s[t]["n"], s[t]["correct"], k) for t in ids])
            delta, low, high = paired_bootstrap(pb, ps, samples, seed)
            rows.append({"subset": name, "problems": len(ids), "k": k, "base": float(pb.mean()),
                         "ssd": float(ps.mean()), "delta": delta, "low": low, "high": high})
    return rows


def _decoding(d: Any) -> str:
    return (f"T={d.temperature}, top-k={d.top_k or 'off'}, top-p={d.top_p}, min-p={d.min_p or 'off'}, "
            f"max_tokens={d.max_tokens}, n={d.n}, seed={d.seed}")


def write_report(root: Path, config: Any, base: dict[str, Any], ssd: dict[str, Any],
                 data: dict[str, Any], loss: list[dict[str, Any]], prov: dict[str, Any]) -> Path:
    rows = compare(base, ssd, config.bootstrap_samples, config.bootstrap_seed)
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [
        f"# SSD report: {config.model}",
        "",
        f"- benchmark: `{config.eval_problems}`" + (f" (first {config.eval_limit})" if config.eval_limit else ""),
        f"- SSD prompts: `{config.train_problems}`" + (f" (first {config.train_limit})" if config.train_limit else ""),
        f"- sampling (T_train): {_decoding(config.sample_decoding)}; filter `{config.sample_filter}`",
        f"- base eval: {_decoding(config.base_decoding)}",
        f"- SSD eval: {_decoding(config.ssd_decoding)}",
        f"- training: {json.dumps(config.training)}",
        f"- date {prov['date']}, git {prov['git_revision']}",
        "",
        "## pass@k, base vs SSD (percent; paired bootstrap 95% interval of the difference over problems)",
        "",
        "| subset | problems | k | base | SSD | diff | 95% interval |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['subset']} | {r['problems']} | {r['k']} | {pct(r['base'])} | {pct(r['ssd'])} | "
                     f"{100 * r['delta']:+.1f} | [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}] |")
    lines += [
        "",
        "## SSD data (from `sample`)",
        "",
        f"- responses: {data['generated']}, kept for training: {data['kept']} (filter `{data['filter']}`)",
        f"- with extractable code: {pct(data['with_code_share'])}%; empty: {pct(data['empty_share'])}%; "
        f"truncated at max_tokens: {pct(data['truncated_share'])}%",
        f"- completion tokens: median {data['completion_tokens']['median']:.0f}, "
        f"p90 {data['completion_tokens']['p90']:.0f}, max {data['completion_tokens']['max']:.0f}",
        "",
        "## Training",
        "",
        f"- optimiser steps: {loss[-1]['step'] if loss else 0}; loss first {loss[0]['loss']:.4f}, "
        f"last {loss[-1]['loss']:.4f} (curve: train/loss.png)" if loss else "- no loss logged",
        "",
        "Artifacts: base_eval/, sample/, train/, ssd_eval/ (each with its config and provenance).",
        "",
    ]
    path = root / "report.md"
    atomic_write_text(path, "\n".join(lines))
    atomic_write_text(root / "report.json", json.dumps({"comparison": rows, "data": data}, indent=1))
    return path
