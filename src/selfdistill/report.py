"""report.md for a run: base vs SSD pass@k with paired bootstrap 95% intervals, per-problem
win/loss counts and an exact sign test (metrics.py).

The interval of a difference resamples problems with replacement (the same problems for
both models, hence paired) and takes the 2.5th and 97.5th percentiles of the mean
per-problem difference in pass@k. Where neither model solved a problem of a subset, the
subset says "no solved problems" instead of a degenerate interval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfdistill.files import atomic_write_text
from selfdistill.metrics import format_interval, ks_for, paired_comparison, subsets


def compare(base: dict[str, Any], ssd: dict[str, Any], samples: int, seed: int) -> list[dict[str, Any]]:
    """Rows (subset, k, base, ssd, delta, low, high, wins, losses, ties, sign_test_p) over
    the problems both runs judged."""
    s = {p["task_id"]: p for p in ssd["problems"]}
    common = [p for p in base["problems"] if p["task_id"] in s]
    if not common:
        raise ValueError("the two runs share no problems")
    n_min = min(min(p["n"] for p in common), min(s[p["task_id"]]["n"] for p in common))
    rows = []
    for name, group in subsets(common).items():
        other = [s[p["task_id"]] for p in group]
        for k in ks_for(n_min):
            row = paired_comparison(group, other, k, samples, seed)
            row["base"], row["ssd"] = row.pop("a"), row.pop("b")
            rows.append({"subset": name, **row})
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
        "## pass@k, base vs SSD",
        "",
        "Percent; the difference with its paired bootstrap 95% interval over problems; wins/losses:",
        "problems where SSD's pass@k is higher/lower; p: two-sided exact sign test on them.",
        "",
        "| subset | problems | k | base | SSD | diff [95% interval] | wins/losses/ties | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['subset']} | {r['problems']} | {r['k']} | {pct(r['base'])} | {pct(r['ssd'])} | "
                     f"{format_interval(r)} | {r['wins']}/{r['losses']}/{r['ties']} | "
                     f"{r['sign_test_p']:.3g} |")
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
