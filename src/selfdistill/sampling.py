"""`selfdistill sample`: SSD data synthesis from the frozen model.

    selfdistill sample --model qwen2.5-coder-0.5b --problems leetcode:train --n 1 \
        --temperature 1.6 --top-k 20 --top-p 0.8 --min-p 0 --max-tokens 512 --seed 0 \
        --filter none --out runs/sample

Writes DIR/generations.jsonl (every raw response, resumable: rerun the same command after
a crash), DIR/samples.jsonl (the rows kept by the post-filter, what `train` reads) and
DIR/summary.json (counts, lengths, truncation rate, share with extractable code, and the
filter), and DIR/stage.json last (records.py). Raw means raw: nothing is verified, repaired or executed.

Filters: none; paper (drop empty responses and one-line stubs: at most one non-blank
line); release (paper, then drop the shortest 10% of what remains by characters). For a
thinking model "empty" and "stub" are judged on the answer after the thought, so a
response whose thought never closed counts as empty (prompts.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selfdistill.config import provenance, to_dict
from selfdistill.files import atomic_write_text
from selfdistill.generation import DecodingConfig, EngineConfig
from selfdistill.problems import ProblemSet, load_problems
from selfdistill.prompts import answer_of, code_of
from selfdistill.records import StageKey, open_stage
from selfdistill.rollouts import generate, generation_key, parse_shard

FILTERS = ("none", "paper", "release")


@dataclass
class SampleConfig:
    """Sample SSD training data from a frozen model."""

    model: str = field(metadata={"help": "model to sample from"})
    problems: str = field(metadata={"help": "prompt pool spec, e.g. leetcode:train"})
    out: str = field(metadata={"help": "output directory"})
    decoding: DecodingConfig = field(metadata={"help": "every decoding parameter"})
    filter: str = field(default="none", metadata={"help": "post-filter: none | paper | release"})
    engine: EngineConfig = field(default_factory=EngineConfig, metadata={
        "help": "generation engine (backend, dtype, server)"})
    batch_size: int = field(default=16, metadata={"help": "prompts per generation batch"})
    limit: int | None = field(default=None, metadata={"help": "only the first N problems"})
    shard: str | None = field(default=None, metadata={
        "help": "i/N: generate only this shard's batches (join shards with `selfdistill merge`)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if self.filter not in FILTERS:
            raise ValueError(f"filter must be one of {FILTERS}")
        parse_shard(self.shard)


def is_stub(text: str) -> bool:
    return sum(1 for line in text.splitlines() if line.strip()) <= 1


def apply_filter(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The post-filter: whole rows are kept (thought included); emptiness and stubs are
    judged on the answer."""
    if name == "none":
        return list(rows)
    kept = [r for r in rows if not is_stub(answer_of(r))]  # an empty answer is a stub too
    if name == "release" and kept:
        cutoff = np.quantile([len(r["completion"]) for r in kept], 0.10)
        kept = [r for r in kept if len(r["completion"]) >= cutoff]
    return kept


def summarise(rows: list[dict[str, Any]], kept: list[dict[str, Any]], filter_name: str) -> dict[str, Any]:
    chars = np.array([len(r["completion"]) for r in rows])
    tokens = np.array([r["completion_tokens"] for r in rows])

    def dist(a: np.ndarray) -> dict[str, float | None]:
        if not len(a):  # an empty shard: nothing to describe
            return {q: None for q in ("min", "p10", "median", "p90", "max", "mean")}
        return {q: float(np.percentile(a, p)) for q, p in
                (("min", 0), ("p10", 10), ("median", 50), ("p90", 90), ("max", 100))} | {"mean": float(a.mean())}

    share = lambda flags: float(np.mean(flags)) if flags else None  # noqa: E731
    return {
        "generated": len(rows),
        "kept": len(kept),
        "filter": filter_name,
        "truncated_share": share([r["finish_reason"] == "length" for r in rows]),
        "with_code_share": share([code_of(r) is not None for r in rows]),
        "empty_share": share([not answer_of(r).strip() for r in rows]),
        "unfinished_thought_share": share([r.get("thought_open", False) and "</think>" not in r["completion"]
                                           for r in rows]),
        "completion_tokens": dist(tokens),
        "completion_chars": dist(chars),
    }


def stage_key(config: SampleConfig, pset: ProblemSet | None = None) -> StageKey:
    """The sample stage's record key: the prompts by content, the generation's settings
    and the model's content, the filter."""
    pset = pset if pset is not None else _problems(config)
    settings, inputs = generation_key(config.model, config.engine, config.decoding, config.batch_size)
    return StageKey("sample", {"problems": config.problems, "limit": config.limit, "shard": config.shard,
                               "filter": config.filter, **settings},
                    {"problems": pset.key(), **inputs})


def _problems(config: SampleConfig) -> ProblemSet:
    return load_problems(config.problems, limit=config.limit)


SAMPLE_OUTPUTS = ["generations.jsonl", "samples.jsonl", "summary.json"]


def sample(config: SampleConfig, backend: Any = None) -> dict[str, Any]:
    """The `sample` stage's entry point; returns the data summary. `backend`, an engine
    already open for config.model (`run` samples with the engine of the base sweep), is
    used and left open."""
    out = Path(config.out)
    pset = _problems(config)
    with open_stage(out, stage_key(config, pset), {"model": config.model}) as stage:
        rows, generation = generate(config.model, config.engine, pset.problems, config.decoding,
                                    config.batch_size, out / "generations.jsonl", config.progress, config.shard,
                                    backend)
        record = {"stage": "sample", **to_dict(config), "problems_resolved": pset.resolved,
                  **generation, "provenance": provenance()}
        summary = write_samples(out, rows, config.filter, record)
        stage.finish(SAMPLE_OUTPUTS, {"provenance": record["provenance"]})
    return summary


def write_samples(out: Path, rows: list[dict[str, Any]], filter_name: str,
                  record: dict[str, Any]) -> dict[str, Any]:
    """Filter the generated rows and write samples.jsonl and summary.json."""
    kept = apply_filter(rows, filter_name)
    summary = summarise(rows, kept, filter_name)
    atomic_write_text(out / "samples.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
    atomic_write_text(out / "summary.json", json.dumps({"summary": summary, "config": record}, indent=1))
    return summary


def format_summary(s: dict[str, Any]) -> str:
    if not s["generated"]:
        return "0 responses (this shard holds no batch)"
    return (
        f"{s['generated']} responses, {s['kept']} kept by filter '{s['filter']}'; "
        f"{100 * s['with_code_share']:.1f}% with extractable code, "
        f"{100 * s['truncated_share']:.1f}% truncated at max_tokens, "
        f"median {s['completion_tokens']['median']:.0f} tokens"
    )
