"""The judge against LiveCodeBench's rules, through real judging subprocesses."""

import pytest

from selfdistill.judge import SandboxConfig, judge
from selfdistill.problems import Problem, TestCase

CFG = SandboxConfig(timeout_s=2, memory_mb=1024)


def stdin_problem(*pairs):
    return Problem("t", "s", "stdin", tests=[TestCase(i, o) for i, o in pairs])


def call_problem(fn, *pairs):
    return Problem("t", "s", "functional", fn_name=fn, tests=[TestCase(i, o) for i, o in pairs])


ADD = "a, b = map(int, input().split())\nprint(a + b)\n"


def test_stdin_program_passes_and_counts_tests():
    r = judge(stdin_problem(("1 2", "3"), ("5 5\n", "10\n")), ADD, CFG)
    assert (r.status, r.passed, r.total) == ("passed", 2, 2)


def test_stdin_comparison_strips_lines_and_trailing_whitespace():
    code = "print('  3  ')\nprint('x ')\nprint()\n"
    assert judge(stdin_problem(("", "3\nx")), code, CFG).ok


def test_stdin_numbers_compare_as_exact_decimals():
    assert judge(stdin_problem(("", "0.5 2")), "print('0.50 2.0')", CFG).ok
    # exact, not approximate: LiveCodeBench uses Decimal equality
    assert not judge(stdin_problem(("", "0.5")), "print('0.5000001')", CFG).ok


def test_stdin_line_count_must_match():
    r = judge(stdin_problem(("", "1\n2")), "print(1)", CFG)
    assert r.status == "failed"
    assert "mismatched" in r.first_failure["error"]


def test_stops_at_first_failure_and_reports_it():
    p = stdin_problem(("1 1", "2"), ("2 2", "5"), ("3 3", "6"))
    r = judge(p, ADD, CFG)
    assert (r.status, r.passed, r.total) == ("failed", 1, 3)
    assert r.first_failure["i"] == 1
    assert r.first_failure["expected"] == "5"
    assert r.first_failure["actual"].strip() == "4"


def test_main_guard_sys_stdin_and_exit_work():
    code = (
        "import sys\n"
        "def main():\n"
        "    data = sys.stdin.read().split()\n"
        "    print(sum(map(int, data)))\n"
        "    exit(0)\n"
        "if __name__ == '__main__':\n"
        "    main()\n"
    )
    assert judge(stdin_problem(("1 2 3", "6"), ("4", "4")), code, CFG).ok


def test_readline_style_input():
    code = "import sys\ninput = sys.stdin.readline\nn = int(input())\nprint(n * 2)\n"
    assert judge(stdin_problem(("21", "42")), code, CFG).ok


def test_functional_call_with_json_lines_and_tuple_as_list():
    code = "class Solution:\n    def pair(self, a: int, xs: List[int]):\n        return (a, sum(xs))\n"
    p = call_problem("pair", ("3\n[1, 2]", "[3, 3]"), ("0\n[]", "[0, 0]"))
    assert judge(p, code, CFG).ok


def test_functional_wrong_answer_and_missing_method():
    code = "class Solution:\n    def f(self, a):\n        return a + 1\n"
    assert judge(call_problem("f", ("1", "3")), code, CFG).status == "failed"
    assert judge(call_problem("g", ("1", "2")), code, CFG).status == "runtime_error"


@pytest.mark.parametrize(
    "code,status",
    [
        ("def f(:\n", "syntax_error"),
        ("print(1/0)", "runtime_error"),
        ("while True:\n    pass", "timeout"),
        ("x = bytearray(4 * 1024**3)", "memory"),
        ("raise SystemExit(3)", "failed"),  # exits quietly: prints nothing, wrong answer
    ],
)
def test_statuses(code, status):
    assert judge(stdin_problem(("", "1")), code, CFG).status == status


def test_no_code():
    assert judge(stdin_problem(("", "1")), None, CFG).status == "no_code"


def test_output_flood_is_capped():
    cfg = SandboxConfig(timeout_s=3, output_cap_bytes=10_000)
    r = judge(stdin_problem(("", "1")), "while True:\n    print('x' * 1000)", cfg)
    assert r.status == "runtime_error"
    assert "output exceeded" in r.first_failure["error"]


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("SELFDISTILL_TEST_SECRET", "hunter2")
    code = "import os\nprint(os.environ.get('SELFDISTILL_TEST_SECRET', 'none'))"
    assert judge(stdin_problem(("", "none")), code, CFG).ok


def test_lcb_file_end_to_end_through_eval(write_jsonl, tmp_path):
    """A LiveCodeBench-format file (stdin and functional, compressed private tests) scored
    through `selfdistill eval --completions`, verdicts as the official judge gives them."""
    import json

    from selfdistill.cli import main

    from .conftest import lcb_row

    rows = [
        lcb_row("s1", "Add", [("1 2", "3"), ("10 20", "30"), ("-1 1", "0")], difficulty="easy"),
        lcb_row("f1", "Twice", [("3", "6"), ("[1]", "[1, 1]")], func_name="twice", difficulty="hard",
                starter="class Solution:\n    def twice(self, x):\n        pass"),
    ]
    problems = write_jsonl("lcb.jsonl", rows)
    fence = "```python\n{}\n```"
    completions = [
        {"task_id": "lcb/s1", "completion": fence.format("a, b = map(int, input().split())\nprint(a + b)")},
        {"task_id": "lcb/s1", "completion": fence.format("a, b = map(int, input().split())\nprint(abs(a + b) if a > 0 else 1)")},
        {"task_id": "lcb/s1", "completion": "I cannot solve this."},
        {"task_id": "lcb/f1", "completion": fence.format("class Solution:\n    def twice(self, x):\n        return x * 2")},
        {"task_id": "lcb/f1", "completion": fence.format("class Solution:\n    def twice(self, x):\n        return x + x if isinstance(x, int) else x")},
    ]
    comp = write_jsonl("c.jsonl", completions)
    assert main(["eval", "--problems", f"lcb:{problems}", "--completions", str(comp),
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    by_id = {p["task_id"]: p for p in res["problems"]}
    assert [s["status"] for s in by_id["lcb/s1"]["samples"]] == ["passed", "failed", "no_code"]
    assert by_id["lcb/s1"]["samples"][1]["passed"] == 2  # the private test -1 1 catches it
    assert [s["status"] for s in by_id["lcb/f1"]["samples"]] == ["passed", "failed"]
    assert res["metrics"]["by_difficulty"]["easy"]["pass@1"] == pytest.approx(1 / 3)
    assert res["metrics"]["by_difficulty"]["hard"]["pass@2"] == 1.0
