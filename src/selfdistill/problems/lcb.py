"""`lcb:PATH[#WINDOW]`, `lcb:hub[#WINDOW]`: LiveCodeBench `code_generation_lite` rows, their
compressed private tests decoded safely, and the release windows on `contest_date`."""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import zlib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfdistillError, located
from selfdistill.files import read_jsonl, sha256_file
from selfdistill.problems.base import Kind, Problem, ProblemSet, TestCase, require_file

# Contest-date windows of LiveCodeBench releases, both bounds inclusive, compared with the
# row's whole `contest_date` timestamp as the official filters compare it. v6 is the
# paper's SSD evaluator's: the contest months 2025-02 to 2025-05 (131 problems), so all of
# 2025-02-01 is v6. v5 is LiveCodeBench's own (start 2024-08-01, end 2025-02-01, compared
# as datetimes at midnight): a contest stamped 2025-02-01T00:00:00 is in v5 too, exactly as
# there, and one stamped later that day is v6 only (docs/problems.md). The release file
# test6.jsonl is a different set and is selected by loading that file unwindowed.
LCB_WINDOWS = {
    "v6": (datetime(2025, 2, 1), datetime(2025, 5, 31, 23, 59, 59)),
    "v5": (datetime(2024, 8, 1), datetime(2025, 2, 1)),
}



class _StrOnlyUnpickler(pickle.Unpickler):
    """LCB's private tests are pickle(str); refuse anything else (pickle can run code)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def decode_lcb_tests(value: Any) -> list[dict[str, Any]]:
    """Public/private test cases: a JSON string, a list, or base64(zlib(pickle(JSON)))."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        raise ValueError(f"test cases must be a string or list, got {type(value).__name__}")
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    payload = zlib.decompress(base64.b64decode(value.encode("utf-8")))
    decoded = _StrOnlyUnpickler(io.BytesIO(payload)).load()
    return json.loads(decoded) if isinstance(decoded, str) else decoded


def parse_window(text: str) -> tuple[str, datetime, datetime]:
    """(name, first instant, last instant), both inclusive; YYYY-MM-DD..YYYY-MM-DD spans
    whole days."""
    if text in LCB_WINDOWS:
        start, end = LCB_WINDOWS[text]
        return text, start, end
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", text)
    if not m:
        raise SelfdistillError(
            f"unknown LiveCodeBench window {text!r}: use v6, v5 or YYYY-MM-DD..YYYY-MM-DD"
        )
    return (text, datetime.combine(date.fromisoformat(m.group(1)), time.min),
            datetime.combine(date.fromisoformat(m.group(2)), time(23, 59, 59, 999999)))


def contest_time(text: str) -> datetime:
    """A row's contest_date as a naive datetime (a bare date is its midnight)."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=None)


def _lcb_hub_files() -> list[Path]:
    from huggingface_hub import hf_hub_download

    names = ["test.jsonl"] + [f"test{i}.jsonl" for i in range(2, 7)]
    try:
        return [
            Path(hf_hub_download("livecodebench/code_generation_lite", n, repo_type="dataset"))
            for n in names
        ]
    except Exception as e:  # offline, gated, renamed: one clear line either way
        raise SelfdistillError(f"lcb:hub: cannot download from the hub ({type(e).__name__})") from e


def load(spec: str, arg: str) -> ProblemSet:
    target, _, window_text = arg.partition("#")
    paths = _lcb_hub_files() if target == "hub" else [require_file(spec, target)]
    window = parse_window(window_text) if window_text else None
    problems = []
    for path in paths:
        for lineno, row in read_jsonl(path):
            try:
                problem = lcb_problem(row)
            except (KeyError, ValueError, TypeError, zlib.error, pickle.UnpicklingError) as e:
                raise located(path, lineno, f"malformed LiveCodeBench row ({e})") from None
            if window:
                try:
                    when = contest_time(problem.metadata["contest_date"])
                except (TypeError, ValueError):
                    raise located(path, lineno, "contest_date is not an ISO date or datetime") from None
                if not window[1] <= when <= window[2]:
                    continue
            problems.append(problem)
    resolved: dict[str, Any] = {"files": [str(p) for p in paths]}
    resolved["sha256"] = [sha256_file(p) for p in paths]
    resolved["window"] = (
        {"name": window[0], "start": window[1].isoformat(), "end": window[2].isoformat()} if window else None
    )
    return ProblemSet(spec, problems, resolved)


def lcb_problem(row: dict[str, Any]) -> Problem:
    tests = decode_lcb_tests(row["public_test_cases"]) + decode_lcb_tests(
        row.get("private_test_cases") or "[]"
    )
    metadata = row.get("metadata") or "{}"
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    kind: Kind = "functional" if tests and tests[0].get("testtype") == "functional" else "stdin"
    fn_name = metadata.get("func_name")
    if kind == "functional" and not fn_name:
        raise ValueError("functional problem without metadata.func_name")
    return Problem(
        task_id=f"lcb/{row['question_id']}",
        statement=row["question_content"],
        kind=kind,
        starter_code=row.get("starter_code") or "",
        fn_name=fn_name if kind == "functional" else None,
        tests=[TestCase(str(t["input"]), str(t["output"])) for t in tests],
        difficulty=str(row["difficulty"]).lower(),
        source="lcb",
        metadata={
            "title": row.get("question_title"),
            "platform": row.get("platform"),
            "contest_id": row.get("contest_id"),
            "contest_date": str(row["contest_date"]),
        },
    )
