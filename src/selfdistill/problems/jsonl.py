"""`jsonl:PATH`: the generic problem format of docs/problems.md."""

from __future__ import annotations

from selfdistill.errors import located
from selfdistill.files import read_jsonl, sha256_file
from selfdistill.problems.base import KINDS, Problem, ProblemSet, require_file


def load(spec: str, arg: str) -> ProblemSet:
    path = require_file(spec, arg)
    problems, ids = [], set()
    for lineno, row in read_jsonl(path):
        for key in ("task_id", "statement", "kind"):
            if not isinstance(row.get(key), str):
                raise located(path, lineno, f"missing or non-string field {key!r}")
        if row["kind"] not in KINDS:
            raise located(path, lineno, f"kind must be one of {KINDS}, got {row['kind']!r}")
        if row["task_id"] in ids:
            raise located(path, lineno, f"duplicate task_id {row['task_id']!r}")
        ids.add(row["task_id"])
        unknown = set(row) - set(Problem.__dataclass_fields__)
        if unknown:
            raise located(path, lineno, f"unknown field(s) {sorted(unknown)}")
        try:
            problem = Problem.from_json(row)
        except TypeError as e:
            raise located(path, lineno, f"malformed test case ({e})") from None
        if problem.kind == "functional" and problem.tests and not problem.fn_name:
            raise located(path, lineno, "functional problem with I/O tests needs fn_name")
        if problem.test_code and not problem.fn_name:
            raise located(path, lineno, "test_code needs fn_name: the function the test code calls")
        if problem.difficulty is not None:
            problem.difficulty = problem.difficulty.lower()
        problem.source = problem.source or "jsonl"
        problems.append(problem)
    return ProblemSet(spec, problems, {"file": str(path), "sha256": sha256_file(path)})
