"""Keep a long run's finished stages in the repository, and put them back on another machine.

    .venv/bin/python benchmarks/run_snapshot.py save RUN_DIR SNAPSHOT_DIR
    .venv/bin/python benchmarks/run_snapshot.py restore SNAPSHOT_DIR RUN_DIR

A run of many hours outlives the machine it started on: a session ends, the next one may
get a fresh machine. `save` copies every *finished* stage of RUN_DIR (its complete
stage.json and the outputs it vouches for) into SNAPSHOT_DIR, with each JSONL output
gzipped (deterministically: no name or time in the header), plus config.resolved.yaml.
Model directories and checkpoints are never copied: a train stage is kept as its record,
loss and config only, so a restored run retrains (its record then says why). `restore`
unpacks a snapshot into RUN_DIR, refusing to overwrite a stage that is already there, and
checks every restored output against the sha256 its record holds, so `selfdistill run
--plan` can call the restored stages fresh. `selfdistill report SNAPSHOT_DIR` renders the
report from a snapshot's files alone (it verifies only what it reads).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from selfdistill.records import RECORD, output_digest, read  # noqa: E402


def stage_dirs(root: Path) -> list[Path]:
    """Every directory under root that holds a complete stage record."""
    found = []
    for record in sorted(root.rglob(RECORD)):
        rec = read(record.parent)
        if rec and rec.get("complete"):
            found.append(record.parent)
    return found


def _gzip(src: Path, dst: Path) -> None:
    with open(src, "rb") as f, open(dst, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as z:
            shutil.copyfileobj(f, z)


def save(run: Path, snapshot: Path) -> list[str]:
    kept = []
    snapshot.mkdir(parents=True, exist_ok=True)
    if (run / "config.resolved.yaml").is_file():
        shutil.copy2(run / "config.resolved.yaml", snapshot / "config.resolved.yaml")
    for stage in stage_dirs(run):
        rel = stage.relative_to(run)
        dest = snapshot / rel
        dest.mkdir(parents=True, exist_ok=True)
        record = read(stage)
        for name in record.get("outputs", {}):
            src = stage / name
            if src.is_dir():
                continue  # a model: never in the repository
            if name.endswith(".jsonl"):
                _gzip(src, dest / (name + ".gz"))
            else:
                shutil.copy2(src, dest / name)
        for extra in sorted(stage.iterdir()):  # figures, loss and configs beside the outputs
            if extra.is_file() and extra.suffix in (".png", ".json", ".md", ".html") and extra.name != RECORD:
                shutil.copy2(extra, dest / extra.name)
        shutil.copy2(stage / RECORD, dest / RECORD)  # last: a half-copied stage has no record
        kept.append(str(rel))
    return kept


def restore(snapshot: Path, run: Path) -> list[str]:
    restored = []
    if (snapshot / "config.resolved.yaml").is_file() and not (run / "config.resolved.yaml").exists():
        run.mkdir(parents=True, exist_ok=True)
        shutil.copy2(snapshot / "config.resolved.yaml", run / "config.resolved.yaml")
    for stage in stage_dirs(snapshot):
        rel = stage.relative_to(snapshot)
        dest = run / rel
        if (dest / RECORD).exists():
            print(f"{rel}: already in {run}, left as it is")
            continue
        record = read(stage)
        outputs = record.get("outputs", {})
        lacking = [n for n in outputs if not (stage / n).exists() and not (stage / (n + ".gz")).exists()]
        if lacking:  # a trained model is never in a snapshot: that stage runs again
            print(f"{rel}: not restored, the snapshot lacks {', '.join(lacking)}")
            continue
        tmp = dest.with_name(dest.name + ".restoring")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(stage, tmp, ignore=shutil.ignore_patterns(RECORD, "*.gz"))
        for gz in stage.glob("*.jsonl.gz"):
            with gzip.open(gz, "rb") as z, open(tmp / gz.name[:-3], "wb") as f:
                shutil.copyfileobj(z, f)
        for name, digest in outputs.items():
            if (tmp / name).exists() and output_digest(tmp / name) != digest:
                shutil.rmtree(tmp)
                sys.exit(f"error: {stage / name}: its content is not what {stage / RECORD} records")
        shutil.copy2(stage / RECORD, tmp / RECORD)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():  # an empty or unfinished directory of the same stage
            shutil.rmtree(dest)
        tmp.rename(dest)
        restored.append(str(rel))
    return restored


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("action", choices=["save", "restore"])
    p.add_argument("source", type=Path)
    p.add_argument("dest", type=Path)
    args = p.parse_args()
    if not args.source.is_dir():
        sys.exit(f"error: {args.source}: no such directory")
    done = save(args.source, args.dest) if args.action == "save" else restore(args.source, args.dest)
    print(json.dumps({args.action: done}))


if __name__ == "__main__":
    main()
