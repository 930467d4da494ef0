"""Resumable, crash-safe generation of responses into an append-only JSONL file.

Used by `sample` (SSD data) and `eval --model`. The plan is fixed up front: item i is
(problem i // n, sample i % n), has seed item_seed(seed, i) and lands in batch
i // batch_size. With a shard i/N a process generates only the batches b with
b % N == i, so N shards together hold exactly the unsharded run's rows (`selfdistill
merge` checks and joins them). After every batch its rows are appended, flushed and
fsynced. On restart, rows of complete batches are kept, a torn last line or a partly
written batch is dropped, and generation continues at the first missing batch with its
items' own seeds, so the file ends up identical to the one an uninterrupted run writes.
What may resume into the file is decided by the calling stage's record (records.py): its
settings and inputs include `generation_key`, so a resume with other settings, another
model's content or other prompt templates is refused rather than mixing two
distributions in one file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.files import append_synced, atomic_write_text, read_appended
from selfdistill.generation import (
    DecodingConfig,
    EngineConfig,
    GenerationBackend,
    item_seed,
    make_backend,
)
from selfdistill.problems import Problem
from selfdistill.prompts import TEMPLATES, prompt_messages


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/N' -> (i, N); None -> (0, 1)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise SelfdistillError(f"shard {text!r}: expected i/N, e.g. 0/2") from None
    if not (n >= 1 and 0 <= i < n):
        raise SelfdistillError(f"shard {text!r}: need 0 <= i < N")
    return i, n


def run_rollouts(
    backend: GenerationBackend,
    problems: list[Problem],
    decoding: DecodingConfig,
    batch_size: int,
    path: Path,
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
) -> list[dict[str, Any]]:
    """Generate decoding.n responses per problem (this shard's batches) into `path`;
    return this shard's rows in plan order."""
    from tqdm.auto import tqdm

    plan = [(p, s) for p in problems for s in range(decoding.n)]
    n_batches = (len(plan) + batch_size - 1) // batch_size
    mine = [b for b in range(n_batches) if b % shard[1] == shard[0]]
    rows = read_appended(path)
    counts: dict[int, int] = {}
    for r in rows:
        counts[r["batch"]] = counts.get(r["batch"], 0) + 1
    expected = {b: len(plan[b * batch_size : (b + 1) * batch_size]) for b in mine}
    done = {b for b, c in counts.items() if c == expected.get(b)}
    kept = [r for r in rows if r["batch"] in done]
    if path.exists():  # drops a torn line and partial batches in one atomic rewrite
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    total = sum(expected.values())
    bar = tqdm(total=total, initial=len(kept), desc="generating", unit="resp", disable=not progress)
    sampler = backend.effective_sampler(decoding)
    with open(path, "a", encoding="utf-8") as out:
        for b in mine:
            if b in done:
                continue
            first = b * batch_size
            items = plan[first : first + batch_size]
            messages = [prompt_messages(p) for p, _ in items]
            seeds = [item_seed(decoding.seed, first + j) for j in range(len(items))]
            gens = backend.generate(messages, decoding, seeds)
            new = []
            for (problem, s), msgs, seed, g in zip(items, messages, seeds, gens):
                new.append({
                    "task_id": problem.task_id,
                    "sample_index": s,
                    "batch": b,
                    "seed": seed,
                    "decoding": asdict(decoding),
                    "sampler": sampler,
                    "prompt": msgs,
                    "completion": g.text,
                    "thought_open": g.thought_open,
                    "finish_reason": g.finish_reason,
                    "prompt_tokens": g.prompt_tokens,
                    "completion_tokens": g.completion_tokens,
                })
            append_synced(out, new)
            kept.extend(new)
            bar.update(len(new))
    bar.close()
    order = {(p.task_id, s): i for i, (p, s) in enumerate(plan)}
    return sorted(kept, key=lambda r: order[(r["task_id"], r["sample_index"])])


def model_content(model: str, engine: EngineConfig) -> str:
    """The model's content hash (models.fingerprint); a served model is known by name only."""
    if engine.backend == "openai":
        return f"served:{model}@{engine.base_url}"
    from selfdistill.models import fingerprint, resolve_model

    return fingerprint(resolve_model(model))


def generation_key(model: str, engine: EngineConfig, decoding: DecodingConfig,
                   batch_size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings, inputs) of a generation for its stage's record: content, not names, so
    a model retrained in place or a changed prompt template never resumes into or reuses
    the same file. Batch size is a setting: batching changes the arithmetic of padded
    prompts, and with it greedy outputs."""
    from selfdistill.generation import resolve_dtype

    dtype = None if engine.backend == "openai" else resolve_dtype(engine.dtype)[0]
    settings = {"decoding": asdict(decoding), "engine": engine.output_settings(), "dtype_resolved": dtype,
                "batch_size": batch_size,
                "templates_sha256": hashlib.sha256(json.dumps(TEMPLATES, sort_keys=True).encode()).hexdigest()}
    return settings, {"model": model_content(model, engine)}


def generate(
    model: str,
    engine: EngineConfig,
    problems: list[Problem],
    decoding: DecodingConfig,
    batch_size: int,
    path: Path,
    progress: bool,
    shard: str | None,
    backend: GenerationBackend | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Open the engine, generate this shard's rows into `path`, close the engine; return
    the rows and the provenance of what generated them (engine, effective sampler,
    templates). The caller's stage record has pinned the settings (generation_key).
    An engine already open for `model` (a sweep decodes one model at many temperatures)
    is used as it is and left open."""
    opened = backend is None
    backend = make_backend(model, engine) if backend is None else backend
    try:
        described = backend.describe()
        sampler = backend.effective_sampler(decoding)
        rows = run_rollouts(backend, problems, decoding, batch_size, path, progress, parse_shard(shard))
    finally:
        if opened:
            backend.close()
    return rows, {"generation": described, "effective_sampler": sampler, "templates": TEMPLATES}
