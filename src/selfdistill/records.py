"""The stage record: one shape for every stage, the only completion marker, and the one
answer to "were these made the same way?".

Every stage (eval, sample, train, sweep, analyze, report, and a merge, which writes the
record of the stage it merges) keeps `stage.json` in its output directory:

    {"stage": "eval", "complete": true,
     "settings": {...},   what it was asked to do (decoding, engine, limits, ...)
     "inputs":   {...},   what it read, by content: model fingerprint, data sha256, the
                          problems' checksum and source version, the judge's limits and packages
     "outputs":  {...},   its files with their sha256 (a model directory: its fingerprint)
     "info":     {...},   provenance and other facts that are not compared}

The record is written twice: `complete: false` when the stage starts (the pin a resume is
checked against) and `complete: true` as the stage's last write, after every output. So a
stage is **fresh** only when its record is complete, its settings and inputs equal what is
asked now, and its outputs are still the files it wrote; **stale** when any of that differs
(`freshness` says which in words); **missing** when it never finished. `differences` is the
comparison that every reuse, resume and merge makes.

One writer per directory: `lock` takes an advisory fcntl lock on DIR/.lock, and a second
process gets one error line at once instead of interleaving its rows with the first's.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.files import atomic_write_text, sha256_file

RECORD = "stage.json"


@dataclass
class StageKey:
    """What decides whether a stage's outputs can be reused: its settings and its inputs
    by content. Two keys are the same run when `differences` finds nothing."""

    stage: str
    settings: dict[str, Any]
    inputs: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        # through JSON, so that a key compares equal to the record it was written into
        return json.loads(json.dumps({"stage": self.stage, "settings": self.settings, "inputs": self.inputs}))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def differences(stored: Any, expected: Any, path: str = "") -> list[str]:
    """Every place where `stored` and `expected` differ, as 'dotted.key: old -> new'
    (keys present on one side only included): empty means the same."""
    if isinstance(stored, dict) and isinstance(expected, dict):
        out = []
        for k in sorted(set(stored) | set(expected), key=str):
            sub = f"{path}.{k}" if path else str(k)
            if k not in stored:
                out.append(f"{sub}: absent -> {_short(expected[k])}")
            elif k not in expected:
                out.append(f"{sub}: {_short(stored[k])} -> absent")
            else:
                out += differences(stored[k], expected[k], sub)
        return out
    if stored != expected:
        return [f"{path or 'value'}: {_short(stored)} -> {_short(expected)}"]
    return []


def read(directory: Path) -> dict[str, Any] | None:
    """The stage record of `directory`, None if there is none (a malformed one is an error)."""
    path = Path(directory) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SelfdistillError(f"{path}: malformed stage record ({e.msg})") from None
    if not isinstance(record, dict) or "stage" not in record:
        raise SelfdistillError(f"{path}: not a selfdistill stage record")
    return record


@dataclass
class Freshness:
    """fresh | stale | missing, and why in words."""

    state: str
    reasons: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None

    @property
    def fresh(self) -> bool:
        return self.state == "fresh"

    def why(self) -> str:
        return "; ".join(self.reasons[:3]) + (f" (+{len(self.reasons) - 3} more)" if len(self.reasons) > 3 else "")


def output_digest(path: Path) -> str:
    """A file's sha256, or a model directory's content fingerprint."""
    if path.is_dir():
        from selfdistill.models import ModelRef, fingerprint

        return fingerprint(ModelRef(str(path), str(path)))
    return "sha256:" + sha256_file(path)


def record_digest(directory: Path) -> str | None:
    """The content of a finished stage, for the stages that read it (sweep, report)."""
    path = Path(directory) / RECORD
    return "sha256:" + sha256_file(path) if path.is_file() else None


def freshness(directory: Path, key: StageKey | Callable[[], StageKey]) -> Freshness:
    """Whether `directory` holds the finished outputs of exactly `key`. A callable key is
    only computed where there is a record to compare it with (a plan of a run that has
    not started needs no model, data or problems)."""
    record = read(directory)
    if record is None:
        started = Path(directory).is_dir() and any(Path(directory).iterdir())
        return Freshness("missing", ["never finished (files of an unfinished run are there; it resumes)"
                                     if started else "not run yet"])
    key = key() if callable(key) else key
    changed = differences({k: record.get(k) for k in ("stage", "settings", "inputs")}, key.as_dict())
    if changed:
        return Freshness("stale", changed, record)
    if not record.get("complete"):
        return Freshness("missing", ["started with these settings but never finished (it resumes)"], record)
    for name, digest in record.get("outputs", {}).items():
        out = Path(directory) / name
        if not out.exists():
            return Freshness("stale", [f"output {name} is gone"], record)
        if output_digest(out) != digest:
            return Freshness("stale", [f"output {name} changed after the stage finished"], record)
    return Freshness("fresh", [], record)


def verified(directory: Path, needed: tuple[str, ...] = ()) -> dict[str, Any]:
    """The complete record of a finished stage whose outputs are still the files it wrote
    (for a stage that reads another's results: merge, report). Outputs may have been
    removed to save space, except `needed`; one error naming the problem, otherwise."""
    record = read(directory)
    if record is None or not record.get("complete"):
        raise SelfdistillError(f"{directory}: not a finished stage (no complete {RECORD})")
    for name, digest in record.get("outputs", {}).items():
        out = Path(directory) / name
        if not out.exists():
            if name in needed:
                raise SelfdistillError(f"{out}: missing (an output of the {record['stage']} stage)")
            continue
        if output_digest(out) != digest:
            raise SelfdistillError(f"{out} changed after the {record['stage']} stage finished")
    return record


class Stage:
    """A stage at work in its directory (see `open_stage`)."""

    def __init__(self, directory: Path, key: StageKey, info: dict[str, Any]):
        self.directory, self.key, self.info = directory, key, info

    def finish(self, outputs: list[str], info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the complete record: the last thing the stage writes."""
        record = {**self.key.as_dict(), "complete": True,
                  "outputs": {name: output_digest(self.directory / name) for name in outputs},
                  "info": json.loads(json.dumps({**self.info, **(info or {})}, default=str))}
        atomic_write_text(self.directory / RECORD, json.dumps(record, indent=1))
        return record


@contextmanager
def open_stage(directory: Path, key: StageKey, info: dict[str, Any] | None = None,
               main_process: bool = True, derived: bool = False) -> Iterator[Stage]:
    """Lock `directory`, check that whatever is there was started with the same key (a
    resume) and mark the stage as started; the body writes the outputs and calls
    `finish`. Work started with another key is refused, never mixed in. A `derived` stage
    (sweep, analyze, report) computes all of its outputs afresh from its inputs, keeps
    nothing of an earlier run, and so replaces an old record instead. Processes of a
    multi-process run other than the main one check but neither lock nor write."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with lock(directory) if main_process else _nothing():
        record = None if derived else read(directory)
        work = sorted(p.name for p in directory.iterdir() if p.name not in (".lock", RECORD))
        if record is not None and not record.get("complete") and not work:
            record = None  # started and stopped before it wrote anything: nothing to mix with
        if record is None and not derived:
            if work:  # nothing says how these were made: resuming into them could mix runs
                raise SelfdistillError(
                    f"{directory} holds files but no stage record ({', '.join(work[:3])}; made by an "
                    "older selfdistill or by hand); use a new output directory or remove this one")
        if record is not None:
            changed = differences({k: record.get(k) for k in ("stage", "settings", "inputs")}, key.as_dict())
            if changed:
                raise SelfdistillError(
                    f"{directory} was {'made' if record.get('complete') else 'started'} with other settings "
                    f"or inputs ({'; '.join(changed[:3])}); use a new output directory or remove this one")
        if main_process:
            atomic_write_text(directory / RECORD, json.dumps({**key.as_dict(), "complete": False}, indent=1))
        yield Stage(directory, key, info or {})


@contextmanager
def _nothing() -> Iterator[None]:
    yield


_HELD: dict[str, list[Any]] = {}  # directory -> [file, depth]: a process may nest its own locks
_HELD_LOCK = threading.Lock()


@contextmanager
def lock(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock on `directory` (DIR/.lock, fcntl), held for the block.
    Re-entrant within the process; another process gets one error line at once."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = str(directory.resolve())
    with _HELD_LOCK:
        held = _HELD.get(name)
        if held:
            held[1] += 1
    if held:
        try:
            yield
        finally:
            with _HELD_LOCK:
                held[1] -= 1
        return
    f = open(directory / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        owner = f.read().strip() or "?"
        f.close()
        raise SelfdistillError(f"{directory} is in use by another selfdistill process (pid {owner}); "
                               "wait for it to finish or use another directory") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    with _HELD_LOCK:
        _HELD[name] = [f, 1]
    try:
        yield
    finally:
        with _HELD_LOCK:
            del _HELD[name]
        f.close()  # closing releases the lock
