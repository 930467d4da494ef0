"""`selfdistill merge`: join the shards of a sharded `sample` or `eval` into one output.

    selfdistill eval ... --shard 0/2 --out runs/base.0     (one machine)
    selfdistill eval ... --shard 1/2 --out runs/base.1     (another)
    selfdistill merge runs/base.0 runs/base.1 --out runs/base

Before anything is scored, the shards must have been made with identical settings (the
pinned `generations.jsonl.meta.json`, shard aside), be the shards 0/N .. N-1/N once each,
and hold every planned item (problem x sample index) exactly once. The merged directory
has the files an unsharded run writes (generations.jsonl byte for byte, samples.jsonl,
results.json or summary.json); eval verdicts are not recomputed, only re-aggregated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.files import atomic_write_text, read_jsonl


@dataclass
class MergeConfig:
    """Shard directories to join and where to write the result."""

    shards: list[str] = field(metadata={"help": "output directories of the shards"})
    out: str = field(metadata={"help": "merged output directory"})


def _stage(d: Path) -> str:
    if (d / "results.json").is_file():
        return "eval"
    if (d / "summary.json").is_file():
        return "sample"
    raise SelfdistillError(f"{d}: not a finished sample or eval shard (no summary.json or results.json)")


def _meta(d: Path) -> dict[str, Any]:
    path = d / "generations.jsonl.meta.json"
    if not path.is_file():
        raise SelfdistillError(f"{d}: no generations.jsonl.meta.json (not a generated shard)")
    return json.loads(path.read_text())


def check_shards(dirs: list[Path]) -> tuple[str, dict[str, Any]]:
    """The stage and the common settings; one error naming what differs, otherwise."""
    stages = {_stage(d) for d in dirs}
    if len(stages) != 1:
        raise SelfdistillError(f"shards mix stages: {sorted(stages)}")
    metas = [_meta(d) for d in dirs]
    base = {k: v for k, v in metas[0].items() if k != "shard"}
    for d, m in zip(dirs[1:], metas[1:]):
        other = {k: v for k, v in m.items() if k != "shard"}
        if other != base:
            changed = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
            raise SelfdistillError(f"{d} was made with other settings than {dirs[0]} ({', '.join(changed)})")
    n = len(dirs)
    expected = sorted(f"{i}/{n}" for i in range(n))
    got = sorted(str(m.get("shard")) for m in metas)
    if got != expected:
        raise SelfdistillError(f"shards {got} are not {expected} once each")
    return stages.pop(), base | {"shard": None}


def _rows(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path, "generations")]


def merge(config: MergeConfig) -> dict[str, Any]:
    """The `merge` stage's entry point; returns the merged metrics or data summary."""
    from selfdistill.evaluation import per_problem_records, write_results
    from selfdistill.problems import load_problems
    from selfdistill.sampling import write_samples

    dirs = [Path(s) for s in config.shards]
    stage, meta = check_shards(dirs)
    rows = [r for d in dirs for r in _rows(d / "generations.jsonl")]
    keys = [(r["task_id"], r["sample_index"]) for r in rows]
    duplicated = len(keys) - len(set(keys))
    if duplicated or len(keys) != meta["items"]:
        raise SelfdistillError(f"shards hold {len(set(keys))} distinct items ({duplicated} twice) "
                               f"of the {meta['items']} planned: a shard is unfinished or repeated")
    rows.sort(key=lambda r: r["batch"])  # stable: the plan order within each batch is kept
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "generations.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_text(out / "generations.jsonl.meta.json", json.dumps(meta, indent=2, sort_keys=True))
    first = json.loads((dirs[0] / ("results.json" if stage == "eval" else "summary.json")).read_text())
    record = {**first["config"], "shard": None, "merged_from": [str(d) for d in dirs]}
    if stage == "sample":
        return write_samples(out, rows, record["filter"], record)
    pset = load_problems(meta["problems"], require_tests=True)
    if meta["limit"]:
        pset.problems = pset.problems[: meta["limit"]]
    order = {p.task_id: i for i, p in enumerate(pset.problems)}
    samples = [row for d in dirs for _, row in read_jsonl(d / "samples.jsonl", "samples")]
    samples.sort(key=lambda s: (order[s["task_id"]], s["sample_index"]))
    problems = [p for p in pset.problems if p.task_id in {s["task_id"] for s in samples}]
    return write_results(out, pset, per_problem_records(problems, samples), samples, record).metrics
