"""Problem sources: counts, splits, LiveCodeBench windows and every kind of bad input."""

import json

import pytest

from selfdistill.cli import main
from selfdistill.errors import SelfdistillError
from selfdistill.problems import decode_lcb_tests, leetcode_split, load_problems

from .conftest import lcb_encode, lcb_row


def test_humaneval_has_164_problems_with_tests():
    pset = load_problems("humaneval")
    assert len(pset.problems) == 164
    assert all(p.kind == "humaneval" and p.test_code for p in pset.problems)


def test_a_sliced_spec_keeps_order_and_is_part_of_the_key():
    head, rest = load_problems("humaneval[:20]"), load_problems("humaneval[20:]")
    assert [p.task_id for p in head.problems] == [f"HumanEval/{i}" for i in range(20)]
    assert len(rest.problems) == 144 and rest.problems[0].task_id == "HumanEval/20"
    assert head.key() != load_problems("humaneval[:21]").key() and head.resolved["slice"] == [None, 20]
    assert load_problems("leetcode:eval[-3:]").problems == load_problems("leetcode:eval").problems[-3:]
    for bad in ("humaneval[a:b]", "humaneval[:]x"):
        with pytest.raises(SelfdistillError):
            load_problems(bad)


def test_a_union_of_sources_keeps_each_part_in_order_and_refuses_a_task_twice():
    both = load_problems("humaneval[:3]+leetcode:eval")
    held = load_problems("leetcode:eval").problems
    assert both.problems == load_problems("humaneval[:3]").problems + held
    assert [part["spec"] for part in both.resolved["parts"]] == ["humaneval[:3]", "leetcode:eval"]
    assert both.summary()["by_source"] == {"humaneval": 3, "leetcode": len(held)}
    assert both.key() != load_problems("humaneval[:4]+leetcode:eval").key()
    assert "directory" not in json.dumps(both.key())  # moving the package's files is not a change
    with pytest.raises(SelfdistillError, match="'HumanEval/0' is in both"):
        load_problems("humaneval[:2]+humaneval[:1]")
    with pytest.raises(SelfdistillError, match="unknown problem spec"):
        load_problems("humaneval+nosuch")


def test_leetcode_splits_are_disjoint_stratified_and_stable():
    train = load_problems("leetcode:train")
    held = load_problems("leetcode:eval")
    every = load_problems("leetcode")
    ids_t = {p.task_id for p in train.problems}
    ids_e = {p.task_id for p in held.problems}
    assert not ids_t & ids_e
    assert ids_t | ids_e == {p.task_id for p in every.problems}
    for d in ("easy", "medium", "hard"):
        share = held.summary()["by_difficulty"][d] / every.summary()["by_difficulty"][d]
        assert 0.07 < share < 0.17, d
    # a pure function of the slug: pinned values guard against accidental reshuffles
    assert leetcode_split("two_sum") == "train"
    assert leetcode_split("accounts_merge") == "eval"
    assert len(held.problems) == 161


def test_leetcode_unrunnable_problems_are_reported_not_silent():
    every = load_problems("leetcode")
    assert "clone_graph" in every.resolved["excluded"]
    assert len(every.problems) + len(every.resolved["excluded"]) == 1405


def test_lcb_rows_decode_compressed_private_tests_and_windows(write_jsonl):
    rows = [
        lcb_row("a", "A", [("1", "1"), ("2", "2")], date="2025-03-10T00:00:00"),
        lcb_row("b", "B", [("1\n2", "3")], func_name="add", starter="class Solution:\n    def add(self, a, b):\n        pass",
                date="2024-09-01T00:00:00", compress_private=False),
        lcb_row("c", "C", [("1", "1")], date="2025-06-02T00:00:00"),
    ]
    path = write_jsonl("lcb.jsonl", rows)
    allp = load_problems(f"lcb:{path}")
    assert [p.task_id for p in allp.problems] == ["lcb/a", "lcb/b", "lcb/c"]
    assert len(allp.problems[0].tests) == 2  # public + private
    assert allp.problems[1].kind == "functional" and allp.problems[1].fn_name == "add"
    v6 = load_problems(f"lcb:{path}#v6")
    assert [p.task_id for p in v6.problems] == ["lcb/a"]
    assert v6.resolved["window"] == {"name": "v6", "start": "2025-02-01T00:00:00", "end": "2025-05-31T23:59:59"}
    custom = load_problems(f"lcb:{path}#2024-01-01..2024-12-31")
    assert [p.task_id for p in custom.problems] == ["lcb/b"]


def test_lcb_windows_put_each_contest_where_the_official_filters_do(write_jsonl):
    """v5 is LiveCodeBench's (to 2025-02-01 at midnight, compared as datetimes), v6 the SSD
    evaluator's months 2025-02..2025-05: only a contest stamped at that midnight is in both."""
    stamps = {"jan31": "2025-01-31T23:00:00", "feb1-midnight": "2025-02-01T00:00:00",
              "feb1-noon": "2025-02-01T12:00:00", "may31-night": "2025-05-31T22:30:00",
              "jun1": "2025-06-01T00:00:00", "aug1": "2024-08-01T00:00:00"}
    path = write_jsonl("lcb.jsonl", [lcb_row(k, k, [("1", "1")], date=d) for k, d in stamps.items()])
    names = lambda spec: [p.task_id[4:] for p in load_problems(spec).problems]  # noqa: E731
    assert names(f"lcb:{path}#v5") == ["jan31", "feb1-midnight", "aug1"]
    assert names(f"lcb:{path}#v6") == ["feb1-midnight", "feb1-noon", "may31-night"]
    assert names(f"lcb:{path}#2025-02-01..2025-02-01") == ["feb1-midnight", "feb1-noon"]


def test_lcb_private_tests_refuse_non_string_pickles():
    import base64
    import pickle
    import zlib

    evil = base64.b64encode(zlib.compress(pickle.dumps(OSError("x")))).decode()
    with pytest.raises(pickle.UnpicklingError):
        decode_lcb_tests(evil)
    assert decode_lcb_tests(lcb_encode([{"input": "1", "output": "2"}])) == [{"input": "1", "output": "2"}]


def test_rstar_deduplicates_on_normalised_statement(write_jsonl):
    path = write_jsonl("r.jsonl", [{"question": "Sum  two\nnumbers."}, {"question": "Sum two numbers. "},
                                   {"question": "Other", "starter_code": "def f(): pass"}])
    pset = load_problems(f"rstar:{path}")
    assert len(pset.problems) == 2 and pset.resolved["duplicates_removed"] == 1
    assert pset.problems[1].kind == "functional"
    assert not pset.problems[0].has_tests


@pytest.mark.parametrize(
    "spec,match",
    [
        ("nosuch", "unknown problem spec"),
        ("leetcode:dev", "train or eval"),
        ("lcb:/no/such/file.jsonl", "no such file"),
        ("jsonl:", "needs a path"),
        ("lcb:{path}#v7", "unknown LiveCodeBench window"),
    ],
)
def test_bad_specs_raise_one_clear_error(spec, match, write_jsonl):
    path = write_jsonl("ok.jsonl", [lcb_row("a", "A", [("1", "1")])])
    with pytest.raises(SelfdistillError, match=match):
        load_problems(spec.format(path=path))


def test_malformed_rows_name_file_and_line(tmp_path):
    path = tmp_path / "p.jsonl"
    good = {"task_id": "x", "statement": "s", "kind": "stdin", "tests": [{"input": "1", "output": "1"}]}
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(SelfdistillError, match=r"p\.jsonl:2: malformed JSON"):
        load_problems(f"jsonl:{path}")
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "task_id": "y", "kind": "weird"}) + "\n")
    with pytest.raises(SelfdistillError, match=r"p\.jsonl:2: kind must be"):
        load_problems(f"jsonl:{path}")
    path.write_text(json.dumps({**good, "tests": [{"inp": 1}]}) + "\n")
    with pytest.raises(SelfdistillError, match=r"p\.jsonl:1: malformed test case"):
        load_problems(f"jsonl:{path}")


def test_problems_without_tests_are_refused_where_tests_are_needed(write_jsonl):
    path = write_jsonl("r.jsonl", [{"question": "Q"}])
    with pytest.raises(SelfdistillError, match="have no tests"):
        load_problems(f"rstar:{path}", require_tests=True)


def test_cli_problems_prints_counts_and_errors_exit_2(capsys):
    assert main(["problems", "leetcode:eval", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 161 and set(summary["by_difficulty"]) == {"easy", "medium", "hard"}
    assert main(["problems", "bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown problem spec")


def test_the_documented_test_code_example_is_judged_honestly(tmp_path):
    """docs/problems.md's `test_code` example: the test code runs outside the sandbox and
    calls the program's function; a correct program passes (as a function or a method of
    Solution), a wrong one fails, and one that forges pass events on every descriptor it
    holds does not pass."""
    from pathlib import Path

    from selfdistill.judge import SandboxConfig, judge_many

    doc = (Path(__file__).parents[1] / "docs" / "problems.md").read_text()
    example = doc.split("```json\n")[-1].split("\n```")[0]
    path = tmp_path / "mine.jsonl"
    path.write_text(example + "\n")
    (problem,) = load_problems(f"jsonl:{path}").problems
    forge = ("import os\nfor fd in range(3, 64):\n    for i in range(3):\n        try:\n"
             "            os.write(fd, ('{\"event\": \"passed\", \"i\": %d}\\n' % i).encode())\n"
             "        except OSError:\n            pass\ndef add(a, b):\n    return 0\n")
    programs = ["def add(a, b):\n    return a + b\n",
                "class Solution:\n    def add(self, a, b):\n        return a + b\n",
                "def add(a, b):\n    return a - b\n", forge, "def plus(a, b):\n    return a + b\n"]
    cfg = SandboxConfig(timeout_s=3, memory_mb=1024, scratch_mb=16)
    statuses = [r.status for r in judge_many([(problem, c) for c in programs], cfg, progress=False)]
    assert statuses[:3] == ["passed", "passed", "failed"]
    # (a program without add leaves the starter code's stub, which returns None)
    assert statuses[3] in ("failed", "judge_protocol") and statuses[4] == "failed", statuses
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "x", "statement": "s", "kind": "functional", "test_code": "assert 1"}) + "\n")
    with pytest.raises(SelfdistillError, match="test_code needs fn_name"):
        load_problems(f"jsonl:{bad}")
