"""The one shape every problem source produces: `Problem` (its tests as I/O pairs or
test code), `TestCase` and `ProblemSet` (problems plus what the spec resolved to, and
their content key for stage records)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from selfdistill.errors import SelfdistillError

Kind = Literal["stdin", "functional", "humaneval"]
KINDS = ("stdin", "functional", "humaneval")
DIFFICULTIES = ("easy", "medium", "hard")



@dataclass
class TestCase:
    """One input/output pair in LiveCodeBench form (stdin text, or one JSON value per line)."""

    __test__ = False  # not a pytest class

    input: str
    output: str


@dataclass
class Problem:
    """One coding problem; what the judge needs is in `tests` (I/O pairs) or `test_code`."""

    task_id: str
    statement: str
    kind: Kind
    starter_code: str = ""
    fn_name: str | None = None
    tests: list[TestCase] = field(default_factory=list)
    test_code: str | None = None
    difficulty: str | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def has_tests(self) -> bool:
        return bool(self.tests) or bool(self.test_code)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Problem:
        row = dict(row)
        row["tests"] = [TestCase(**t) for t in row.get("tests") or []]
        return cls(**row)


def _without_paths(resolved: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in resolved.items() if k not in ("directory", "file", "files")}
    if "parts" in out:
        out["parts"] = [_without_paths(part) for part in out["parts"]]
    return out


@dataclass
class ProblemSet:
    """Problems plus what was resolved from the spec (file hashes, windows, exclusions)."""

    spec: str
    problems: list[Problem]
    resolved: dict[str, Any] = field(default_factory=dict)

    def key(self) -> dict[str, Any]:
        """The problems by content, for the stage record: a checksum of every problem as
        loaded (statement, tests, metadata) and the source's version; paths are left out,
        so moving a file does not make a stage stale but editing it does."""
        content = json.dumps([p.to_json() for p in self.problems], sort_keys=True, default=str)
        return {"count": len(self.problems), "sha256": hashlib.sha256(content.encode()).hexdigest(),
                "source": _without_paths(self.resolved)}

    def summary(self) -> dict[str, Any]:
        kinds = Counter(p.kind for p in self.problems)
        diffs = Counter(p.difficulty or "unknown" for p in self.problems)
        return {
            "spec": self.spec,
            "count": len(self.problems),
            "by_kind": dict(sorted(kinds.items())),
            "by_difficulty": dict(sorted(diffs.items())),
            "by_source": dict(sorted(Counter(p.source for p in self.problems).items())),
            "with_tests": sum(p.has_tests for p in self.problems),
            "resolved": self.resolved,
        }


def require_file(spec: str, arg: str) -> Path:
    if not arg:
        raise SelfdistillError(f"problem spec {spec!r} needs a path after the colon")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise SelfdistillError(f"{path}: no such file (from problem spec {spec!r})")
    return path
