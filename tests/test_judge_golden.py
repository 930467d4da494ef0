"""Differential test against LiveCodeBench's official judge: 43 answers to 15 problems
(tests/data/judge_golden, verdicts from LiveCodeBench's own run_test at commit 28fef95 with
its 6 s limit). Every answer must get the official pass/fail."""

import json
from pathlib import Path

import pytest

from selfdistill.judge import SandboxConfig, judge_many
from selfdistill.problems import load_problems
from selfdistill.prompts import extract_code

DATA = Path(__file__).parent / "data" / "judge_golden"


@pytest.fixture(scope="module")
def verdicts():
    problems = {p.task_id: p for p in load_problems(f"lcb:{DATA / 'problems.jsonl'}").problems}
    rows = [json.loads(line) for line in (DATA / "completions.jsonl").read_text().splitlines()]
    items = [(problems[r["task_id"]], extract_code(r["completion"])) for r in rows]
    results = judge_many(items, SandboxConfig(timeout_s=6), progress=False)
    return rows, results


def test_fixture_is_complete(verdicts):
    rows, _ = verdicts
    assert len(rows) == 43 and sum(r["official"] for r in rows) == 28


def test_every_verdict_matches_livecodebench(verdicts):
    rows, results = verdicts
    wrong = [(r["case"], r["official"], res.status, (res.first_failure or {}).get("error"))
             for r, res in zip(rows, results) if res.ok != r["official"]]
    assert wrong == []
