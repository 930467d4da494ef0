"""`selfdistill eval`: score existing responses, or generate them from a model and score.

    selfdistill eval --problems humaneval --completions answers.jsonl --out runs/he
    selfdistill eval --model qwen2.5-coder-0.5b --problems leetcode:eval --n 1 \
        --temperature 0 --top-k 0 --top-p 1 --min-p 0 --max-tokens 768 --seed 0 --out runs/base

Writes DIR/results.json (config, metrics, per-problem verdicts), DIR/samples.jsonl (every
raw response with its extracted code and verdict) and prints a table: pass@k (metrics.py)
overall and by difficulty, for each k in 1, 2, 5, 10, ... up to the smallest n.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.config import provenance, to_dict
from selfdistill.errors import SelfdistillError, located
from selfdistill.files import atomic_write_text, read_jsonl
from selfdistill.generation import DecodingConfig, EngineConfig
from selfdistill.judge import SandboxConfig, judge_description, judge_many
from selfdistill.metrics import compute_metrics
from selfdistill.problems import Problem, ProblemSet, load_problems
from selfdistill.prompts import extract_code
from selfdistill.rollouts import generate, parse_shard


@dataclass
class EvalConfig:
    """Evaluate responses (from a file or a model) on a problem set."""

    problems: str = field(metadata={"help": "problem spec, e.g. humaneval or leetcode:eval"})
    out: str = field(metadata={"help": "output directory"})
    completions: str | None = field(default=None, metadata={"help": "JSONL of task_id/completion rows"})
    model: str | None = field(default=None, metadata={"help": "model to generate with"})
    decoding: DecodingConfig | None = field(default=None, metadata={"help": "decoding (with --model)"})
    engine: EngineConfig = field(default_factory=EngineConfig, metadata={
        "help": "generation engine (backend, dtype, server)"})
    batch_size: int = field(default=16, metadata={"help": "prompts per generation batch"})
    limit: int | None = field(default=None, metadata={"help": "only the first N problems"})
    shard: str | None = field(default=None, metadata={
        "help": "i/N: generate and judge only this shard's batches (join with `selfdistill merge`)"})
    sandbox: SandboxConfig = field(default_factory=SandboxConfig, metadata={"help": "judge limits"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if (self.completions is None) == (self.model is None):
            raise ValueError("give exactly one of completions or model")
        if self.model is not None and self.decoding is None:
            raise ValueError("evaluating a model needs every decoding parameter "
                             "(temperature, top_k, top_p, min_p, max_tokens, n, seed)")
        if self.batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if self.shard is not None and self.completions is not None:
            raise ValueError("shard applies to generation (--model), not to --completions")
        parse_shard(self.shard)


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    problems: list[dict[str, Any]]
    out: Path


def read_completions(path: Path, known: dict[str, Problem]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lineno, row in read_jsonl(path, "completions"):
        if not isinstance(row.get("task_id"), str) or not isinstance(row.get("completion"), str):
            raise located(path, lineno, "each row needs string fields task_id and completion")
        if row["task_id"] not in known:
            raise located(path, lineno, f"task_id {row['task_id']!r} is not in the problem set")
        grouped[row["task_id"]].append(row)
    if not grouped:
        raise SelfdistillError(f"{path}: no completions")
    return grouped


def score(
    pset: ProblemSet, grouped: dict[str, list[dict[str, Any]]], sandbox: SandboxConfig, progress: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Judge every response; return per-problem records and per-sample rows."""
    problems = [p for p in pset.problems if p.task_id in grouped]
    items, samples = [], []
    for p in problems:
        for row in grouped[p.task_id]:
            code = extract_code(row["completion"])
            items.append((p, code))
            samples.append({**row, "code": code})
    results = judge_many(items, sandbox, progress=progress)
    for sample, res in zip(samples, results):
        sample["result"] = res.to_json()
    return per_problem_records(problems, samples), samples


def per_problem_records(problems: list[Problem], samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-problem counts (n, correct) and verdicts from judged sample rows, in problem order."""
    per_problem: dict[str, dict[str, Any]] = {
        p.task_id: {"task_id": p.task_id, "difficulty": p.difficulty, "n": 0, "correct": 0,
                    "samples": []} for p in problems}
    for sample in samples:
        res = sample["result"]
        rec = per_problem[sample["task_id"]]
        rec["n"] += 1
        rec["correct"] += res["status"] == "passed"
        rec["samples"].append({**{k: res[k] for k in ("status", "passed", "total", "first_failure")},
                               "decided": res.get("decided", "sandbox")})
    return [r for r in per_problem.values() if r["n"]]


def evaluate(config: EvalConfig, backend: Any = None) -> EvalResult:
    """The `eval` stage's entry point; `backend`, an engine already open for config.model,
    spares a sweep one engine start per temperature."""
    out = Path(config.out)
    pset = load_problems(config.problems, require_tests=True)
    if config.limit:
        pset.problems = pset.problems[: config.limit]
    known = {p.task_id: p for p in pset.problems}
    record: dict[str, Any] = {"stage": "eval", **to_dict(config), "problems_resolved": pset.resolved}
    if config.completions:
        grouped = read_completions(Path(config.completions), known)
        out.mkdir(parents=True, exist_ok=True)
    else:
        out.mkdir(parents=True, exist_ok=True)
        rows, generation = generate(config.model, config.engine, pset.problems,
                                    {"problems": config.problems, "limit": config.limit},
                                    config.decoding, config.batch_size, out / "generations.jsonl",
                                    config.progress, config.shard, backend)
        record.update(generation)
        grouped = defaultdict(list)
        for r in rows:
            grouped[r["task_id"]].append(r)
    problems, samples = score(pset, grouped, config.sandbox, config.progress)
    record["judge"] = judge_description(config.sandbox)
    record["provenance"] = provenance()
    return write_results(out, pset, problems, samples, record)


def write_results(out: Path, pset: ProblemSet, problems: list[dict[str, Any]],
                  samples: list[dict[str, Any]], record: dict[str, Any]) -> EvalResult:
    """Metrics from per-problem records; samples.jsonl and results.json, atomically."""
    metrics = compute_metrics(problems)
    metrics["problems_without_samples"] = len(pset.problems) - len(problems)
    atomic_write_text(out / "samples.jsonl", "".join(json.dumps(s) + "\n" for s in samples))
    results = {"config": record, "metrics": metrics, "problems": problems}
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    return EvalResult(metrics, problems, out)


def format_table(metrics: dict[str, Any], title: str = "results") -> str:
    """A plain-text table of pass@k overall and by difficulty."""
    ks = [k for k in metrics if k.startswith("pass@")]
    rows = [("overall", metrics)] + list(metrics.get("by_difficulty", {}).items())
    header = f"{'subset':<10} {'problems':>8} " + " ".join(f"{k:>8}" for k in ks)
    lines = [title, header, "-" * len(header)]
    for name, m in rows:
        lines.append(f"{name:<10} {m['count']:>8} " + " ".join(f"{100 * m.get(k, float('nan')):>7.1f}%" for k in ks))
    status = metrics.get("problems_without_samples")
    if status:
        lines.append(f"({status} problems of the set had no samples and are not counted)")
    return "\n".join(lines)
