"""`selfdistill merge`: join the shards of a sharded `sample` or `eval` into one output.

    selfdistill eval ... --shard 0/2 --out runs/base.0     (one machine)
    selfdistill eval ... --shard 1/2 --out runs/base.1     (another)
    selfdistill merge runs/base.0 runs/base.1 --out runs/base

Before anything is scored, the shards must be finished stages whose outputs are still the
files they wrote, have identical settings and inputs in their stage records (records.py;
the shard aside), be the shards 0/N .. N-1/N once each, and hold every planned item
(problem x sample index) exactly once. The merged directory has the files an unsharded
run writes (generations.jsonl byte for byte, samples.jsonl, results.json or summary.json)
and the stage record an unsharded run writes, so a `run` can reuse it; eval verdicts are
not recomputed, only re-aggregated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill import records
from selfdistill.errors import SelfdistillError
from selfdistill.files import atomic_write_text, read_jsonl


@dataclass
class MergeConfig:
    """Shard directories to join and where to write the result."""

    shards: list[str] = field(metadata={"help": "output directories of the shards"})
    out: str = field(metadata={"help": "merged output directory"})


def _record(d: Path) -> dict[str, Any]:
    """A shard's complete stage record, its outputs still the files it wrote."""
    record = records.verified(d, ("generations.jsonl", "samples.jsonl"))
    if record["stage"] not in ("sample", "eval") or "shard" not in record["settings"]:
        raise SelfdistillError(f"{d}: a {record['stage']} stage, not a sample or eval shard")
    return record


def check_shards(dirs: list[Path]) -> records.StageKey:
    """The key of the merged stage (the shards' common key, unsharded); one error naming
    what differs, otherwise."""
    recs = [_record(d) for d in dirs]

    def unsharded(r: dict[str, Any]) -> dict[str, Any]:
        return {"stage": r["stage"], "settings": {**r["settings"], "shard": None}, "inputs": r["inputs"]}

    base = unsharded(recs[0])
    for d, r in zip(dirs[1:], recs[1:]):
        changed = records.differences(unsharded(r), base)
        if changed:
            raise SelfdistillError(f"{d} was made with other settings or inputs than {dirs[0]} "
                                   f"({'; '.join(changed[:3])})")
    n = len(dirs)
    expected = sorted(f"{i}/{n}" for i in range(n))
    got = sorted(str(r["settings"].get("shard")) for r in recs)
    if got != expected:
        raise SelfdistillError(f"shards {got} are not {expected} once each")
    return records.StageKey(base["stage"], base["settings"], base["inputs"])


def _rows(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path, "generations")]


def merge(config: MergeConfig) -> dict[str, Any]:
    """The `merge` stage's entry point; returns the merged metrics or data summary."""
    from selfdistill.evaluation import eval_outputs, per_problem_records, write_results
    from selfdistill.problems import load_problems
    from selfdistill.sampling import SAMPLE_OUTPUTS, write_samples

    dirs = [Path(s) for s in config.shards]
    key = check_shards(dirs)
    settings = key.settings
    pset = load_problems(settings["problems"], require_tests=key.stage == "eval", limit=settings["limit"])
    planned = len(pset.problems) * settings["decoding"]["n"]
    rows = [r for d in dirs for r in _rows(d / "generations.jsonl")]
    keys = [(r["task_id"], r["sample_index"]) for r in rows]
    duplicated = len(keys) - len(set(keys))
    if duplicated or len(keys) != planned:
        raise SelfdistillError(f"shards hold {len(set(keys))} distinct items ({duplicated} twice) "
                               f"of the {planned} planned: a shard is unfinished or repeated")
    rows.sort(key=lambda r: r["batch"])  # stable: the plan order within each batch is kept
    out = Path(config.out)
    first = json.loads((dirs[0] / ("results.json" if key.stage == "eval" else "summary.json")).read_text())
    record = {**first["config"], "shard": None, "merged_from": [str(d) for d in dirs]}
    with records.open_stage(out, key, {"merged_from": record["merged_from"]}) as stage:
        atomic_write_text(out / "generations.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        if key.stage == "sample":
            result = write_samples(out, rows, settings["filter"], record)
            stage.finish(SAMPLE_OUTPUTS)
            return result
        order = {p.task_id: i for i, p in enumerate(pset.problems)}
        samples = [row for d in dirs for _, row in read_jsonl(d / "samples.jsonl", "samples")]
        samples.sort(key=lambda s: (order[s["task_id"]], s["sample_index"]))
        problems = [p for p in pset.problems if p.task_id in {s["task_id"] for s in samples}]
        metrics = write_results(out, pset, per_problem_records(problems, samples), samples, record).metrics
        stage.finish(eval_outputs(out))
        return metrics
