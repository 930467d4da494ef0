"""`selfdistill eval`: score existing responses, or generate them from a model and score.

    selfdistill eval --problems humaneval --completions answers.jsonl --out runs/he
    selfdistill eval --model qwen2.5-coder-0.5b --problems leetcode:eval --n 1 \
        --temperature 0 --top-k 0 --top-p 1 --min-p 0 --max-tokens 768 --seed 0 --out runs/base

Writes DIR/verdicts.jsonl (each verdict as it is decided, so a killed run resumes without
judging again), DIR/results.json (config, metrics, per-problem verdicts), DIR/samples.jsonl
(every raw response with its extracted code and verdict), DIR/stage.json last (records.py)
and prints a table: pass@k (metrics.py)
overall and by difficulty, for each k in 1, 2, 5, 10, ... up to the smallest n.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.config import provenance, to_dict
from selfdistill.errors import SelfdistillError, located
from selfdistill.files import (
    append_synced,
    atomic_write_text,
    read_appended,
    read_jsonl,
    sha256_file,
)
from selfdistill.generation import DecodingConfig, EngineConfig
from selfdistill.judge import SandboxConfig, judge_description, judge_key, judge_many
from selfdistill.metrics import compute_metrics
from selfdistill.problems import Problem, ProblemSet, load_problems
from selfdistill.prompts import code_of
from selfdistill.records import StageKey, open_stage
from selfdistill.rollouts import generate, generation_key, parse_shard


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
        if not isinstance(row.get("thought_open", False), bool):
            raise located(path, lineno, "thought_open, where given, must be true or false")
        if row["task_id"] not in known:
            raise located(path, lineno, f"task_id {row['task_id']!r} is not in the problem set")
        grouped[row["task_id"]].append(row)
    if not grouped:
        raise SelfdistillError(f"{path}: no completions")
    return grouped


def score(
    pset: ProblemSet, grouped: dict[str, list[dict[str, Any]]], sandbox: SandboxConfig, progress: bool,
    out: Path,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """Judge every response; return per-problem records, per-sample rows and how many
    verdicts were reused. Each verdict is appended to out/verdicts.jsonl (fsynced) the
    moment it is decided, keyed by the response's position, problem and code, so an
    evaluation killed at any point and rerun judges only what it had not kept (the stage
    record has pinned the judge's limits). A `judge_error` verdict is judged again."""
    problems = [p for p in pset.problems if p.task_id in grouped]
    items, samples, keys = [], [], []
    for p in problems:
        for row in grouped[p.task_id]:
            code = code_of(row)
            items.append((p, code))
            samples.append({**row, "code": code})
            digest = hashlib.sha256((code if code is not None else "\0none").encode()).hexdigest()[:16]
            keys.append(f"{len(keys)}:{p.task_id}:{digest}")
    path = out / "verdicts.jsonl"
    kept = {r["key"]: r["result"] for r in read_appended(path)
            if isinstance(r.get("result"), dict) and r["result"].get("status") not in (None, "judge_error")}
    wanted = set(keys)
    kept = {k: v for k, v in kept.items() if k in wanted}
    # one atomic rewrite drops a torn line, stale rows and judge errors
    atomic_write_text(path, "".join(json.dumps({"key": k, "result": v}) + "\n" for k, v in kept.items()))
    todo = [i for i, k in enumerate(keys) if k not in kept]
    with open(path, "a", encoding="utf-8") as f:
        def keep(j: int, res: Any) -> None:
            key = keys[todo[j]]
            kept[key] = res.to_json()
            append_synced(f, [{"key": key, "result": kept[key]}])

        judge_many([items[i] for i in todo], sandbox, progress=progress, on_result=keep)
    for sample, key in zip(samples, keys):
        sample["result"] = kept[key]
    errors = sum(kept[k]["status"] == "judge_error" for k in keys)
    if errors:
        print(f"warning: the judge could not run {errors} program(s) (status judge_error); "
              "rerun the same command to judge them again", file=sys.stderr)
    counts = {"reused": len(keys) - len(todo), "judged": len(todo), "judge_errors": errors}
    return per_problem_records(problems, samples), samples, counts


def stage_key(config: EvalConfig, pset: ProblemSet | None = None) -> StageKey:
    """The eval stage's record key: problems and judge by content, the responses' source
    (a completions file's sha256, or the generation's settings and model content)."""
    pset = pset if pset is not None else load_eval_problems(config)
    settings: dict[str, Any] = {"problems": config.problems, "limit": config.limit, "shard": config.shard}
    inputs: dict[str, Any] = {"problems": pset.key(), "judge": judge_key(config.sandbox)}
    if config.completions:
        path = Path(config.completions)
        if not path.is_file():
            raise SelfdistillError(f"{path}: no such completions file")
        inputs["completions"] = "sha256:" + sha256_file(path)
    else:
        gen_settings, gen_inputs = generation_key(config.model, config.engine, config.decoding, config.batch_size)
        settings |= gen_settings
        inputs |= gen_inputs
    return StageKey("eval", settings, inputs)


def load_eval_problems(config: EvalConfig) -> ProblemSet:
    return load_problems(config.problems, require_tests=True, limit=config.limit)


def per_problem_records(problems: list[Problem], samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-problem counts (n, correct) and verdicts from judged sample rows, in problem order."""
    per_problem: dict[str, dict[str, Any]] = {
        p.task_id: {"task_id": p.task_id, "source": p.source, "difficulty": p.difficulty, "n": 0, "correct": 0,
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
    pset = load_eval_problems(config)
    known = {p.task_id: p for p in pset.problems}
    record: dict[str, Any] = {"stage": "eval", **to_dict(config), "problems_resolved": pset.resolved}
    grouped = read_completions(Path(config.completions), known) if config.completions else None
    with open_stage(out, stage_key(config, pset), {"model": config.model}) as stage:
        if grouped is None:
            rows, generation = generate(config.model, config.engine, pset.problems, config.decoding,
                                        config.batch_size, out / "generations.jsonl", config.progress,
                                        config.shard, backend)
            record.update(generation)
            grouped = defaultdict(list)
            for r in rows:
                grouped[r["task_id"]].append(r)
        problems, samples, counts = score(pset, grouped, config.sandbox, config.progress, out)
        record["judge"] = judge_description(config.sandbox)
        record["judging"] = counts
        record["provenance"] = provenance()
        result = write_results(out, pset, problems, samples, record)
        stage.finish(eval_outputs(out), {"provenance": record["provenance"], "judging": counts})
    return result


def eval_outputs(out: Path) -> list[str]:
    """The files an eval stage's record vouches for."""
    return [n for n in ("generations.jsonl", "samples.jsonl", "results.json") if (out / n).exists()]


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
