"""`rstar:PATH`, `rstar:hub`: rStar-Coder seed problems (prompts only, de-duplicated by
statement)."""

from __future__ import annotations

import hashlib
from typing import Any

from selfdistill.errors import SelfdistillError, located
from selfdistill.files import read_jsonl, sha256_file
from selfdistill.problems.base import Problem, ProblemSet, require_file


def normalise_statement(text: str) -> str:
    return " ".join(text.split())


def load(spec: str, arg: str) -> ProblemSet:
    if arg == "hub":
        rows = _rstar_hub_rows()
        resolved: dict[str, Any] = {"hub": "microsoft/rStar-Coder", "config": "seed_sft"}
        where: Any = "rstar:hub"
    else:
        path = require_file(spec, arg)
        rows = read_jsonl(path)
        resolved = {"file": str(path), "sha256": sha256_file(path)}
        where = path
    problems, seen, duplicates = [], set(), 0
    for lineno, row in rows:
        statement = row.get("question") or row.get("question_content") or row.get("problem")
        if not isinstance(statement, str) or not statement.strip():
            raise located(where, lineno, "rStar-Coder row without a 'question' string")
        key = normalise_statement(statement)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        starter = row.get("starter_code") or ""
        qid = row.get("question_id") or row.get("id") or hashlib.sha1(key.encode()).hexdigest()[:12]
        problems.append(
            Problem(
                task_id=f"rstar/{qid}",
                statement=statement,
                kind="functional" if starter.strip() else "stdin",
                starter_code=starter,
                source="rstar",
            )
        )
    resolved["duplicates_removed"] = duplicates
    return ProblemSet(spec, problems, resolved)


def _rstar_hub_rows() -> list[tuple[int, dict[str, Any]]]:
    try:
        import datasets

        ds = datasets.load_dataset("microsoft/rStar-Coder", "seed_sft", split="train")
    except Exception as e:
        raise SelfdistillError(f"rstar:hub: cannot load from the hub ({type(e).__name__})") from e
    return [(i + 1, dict(row)) for i, row in enumerate(ds)]
