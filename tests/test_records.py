"""The stage record and what it guarantees: one comparison for every reuse, judging that
survives kill -9 without judging again what it kept, a program the judge cannot run that
costs only its own verdict, one writer per directory, and a model materialised safely by
several processes at once."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from selfdistill import records
from selfdistill.cli import main
from selfdistill.errors import SelfdistillError
from selfdistill.problems import load_problems


def test_differences_name_every_changed_key_in_words():
    old = {"settings": {"decoding": {"temperature": 0.7, "top_k": 20}, "limit": None}, "inputs": {"model": "a"}}
    new = {"settings": {"decoding": {"temperature": 0.9, "top_k": 20}, "shard": "0/2"}, "inputs": {"model": "a"}}
    assert records.differences(old, new) == ["settings.decoding.temperature: 0.7 -> 0.9",
                                             "settings.limit: null -> absent", "settings.shard: absent -> 0/2"]
    assert records.differences(old, json.loads(json.dumps(old))) == []


def test_freshness_is_missing_then_fresh_then_stale_when_an_output_changes(tmp_path):
    key = records.StageKey("demo", {"x": 1}, {"data": "sha256:0"})
    assert records.freshness(tmp_path / "d", key).state == "missing"
    with records.open_stage(tmp_path / "d", key) as stage:
        assert records.freshness(tmp_path / "d", key).state == "missing"  # started, not finished
        (tmp_path / "d" / "out.txt").write_text("result")
        stage.finish(["out.txt"])
    assert records.freshness(tmp_path / "d", key).fresh
    state = records.freshness(tmp_path / "d", records.StageKey("demo", {"x": 2}, {"data": "sha256:0"}))
    assert state.state == "stale" and state.reasons == ["settings.x: 1 -> 2"]
    with pytest.raises(SelfdistillError, match="made with other settings or inputs"):
        with records.open_stage(tmp_path / "d", records.StageKey("demo", {"x": 2}, {"data": "sha256:0"})):
            pass
    (tmp_path / "d" / "out.txt").write_text("edited")
    assert records.freshness(tmp_path / "d", key).why() == "output out.txt changed after the stage finished"


def test_files_without_a_record_are_never_resumed_into(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "generations.jsonl").write_text("{}\n")  # an older version's run, or a user's file
    with pytest.raises(SelfdistillError, match="holds files but no stage record"):
        with records.open_stage(tmp_path / "d", records.StageKey("demo", {}, {})):
            pass


def _completions(path, problems, slow):
    """Canonical HumanEval solutions, each made slow, so a kill lands mid-judging."""
    rows = []
    for p in problems:
        solution = f"import time\ntime.sleep({slow})\n" + p.starter_code + p.metadata["canonical_solution"]
        rows.append({"task_id": p.task_id, "completion": f"```python\n{solution}```"})
        rows.append({"task_id": p.task_id, "completion": f"```python\n{p.starter_code}    pass\n```"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _verdicts(out):
    results = json.loads((out / "results.json").read_text())
    return [(p["task_id"], [(s["status"], s["passed"], s["total"]) for s in p["samples"]])
            for p in results["problems"]], results["config"]["judging"]


def test_judging_killed_with_sigkill_resumes_with_exactly_the_verdicts_of_an_uninterrupted_run(tmp_path):
    problems = load_problems("humaneval").problems[:20]
    completions = _completions(tmp_path / "c.jsonl", problems, 0.3)
    args = [sys.executable, "-m", "selfdistill.cli", "eval", "--problems", "humaneval", "--limit", "20",
            "--completions", str(completions), "--workers", "2", "--no-progress"]
    subprocess.run(args + ["--out", str(tmp_path / "ref")], check=True, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    verdicts = out / "verdicts.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (verdicts.exists() and verdicts.read_text().count("\n") >= 6):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = verdicts.read_text().count("\n")
    assert 6 <= kept < 40, "the kill must land mid-judging"
    assert not (out / "results.json").exists()
    subprocess.run(args + ["--out", str(out)], check=True, capture_output=True)
    (ref, ref_counts), (got, counts) = _verdicts(tmp_path / "ref"), _verdicts(out)
    assert got == ref and ref_counts == {"reused": 0, "judged": 40, "judge_errors": 0}
    assert counts == {"reused": kept, "judged": 40 - kept, "judge_errors": 0}  # nothing judged twice
    assert records.read(out)["complete"]


def test_a_program_the_judge_cannot_run_gets_its_own_verdict_and_the_rest_go_on(tmp_path, write_jsonl, capsys):
    good = {"kind": "functional", "fn_name": "f", "starter_code": "class Solution:\n    def f(self, x):\n",
            "statement": "return x", "tests": [{"input": "1", "output": "1"}]}
    bad = {**good, "tests": [{"input": "1", "output": "[1, 2"}]}  # an expected value the judge cannot read
    problems = write_jsonl("p.jsonl", [{"task_id": "a", **good}, {"task_id": "b", **bad}, {"task_id": "c", **good}])
    code = "```python\nclass Solution:\n    def f(self, x):\n        return x\n```"
    completions = write_jsonl("c.jsonl", [{"task_id": t, "completion": code} for t in "abc"])
    assert main(["eval", "--problems", f"jsonl:{problems}", "--completions", str(completions),
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert "could not run 1 program(s) (status judge_error)" in capsys.readouterr().err
    statuses = {p["task_id"]: p["samples"][0]["status"] for p in
                json.loads((tmp_path / "o" / "results.json").read_text())["problems"]}
    assert statuses == {"a": "passed", "b": "judge_error", "c": "passed"}


def test_a_second_writer_is_refused_at_once_and_the_first_finishes_intact(tmp_path, tiny_model_dir):
    args = [sys.executable, "-m", "selfdistill.cli", "sample", "--model", str(tiny_model_dir),
            "--problems", "humaneval", "--limit", "30", "--temperature", "1.0", "--top-k", "0",
            "--top-p", "1.0", "--min-p", "0", "--max-tokens", "16", "--n", "1", "--seed", "3",
            "--batch-size", "1", "--no-progress"]
    subprocess.run(args + ["--out", str(tmp_path / "ref")], check=True, capture_output=True)
    out = tmp_path / "shared"
    first = subprocess.Popen(args + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    gen = out / "generations.jsonl"
    while time.time() < deadline and not (gen.exists() and gen.read_text().count("\n") >= 2):
        time.sleep(0.01)
    start = time.time()
    second = subprocess.run(args + ["--out", str(out)], capture_output=True, text=True)
    assert second.returncode == 2 and time.time() - start < 60
    err = second.stderr.strip().splitlines()
    assert err[-1].startswith("error: ") and "in use by another selfdistill process" in err[-1]
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert gen.read_text() == (tmp_path / "ref" / "generations.jsonl").read_text()
    assert records.read(out)["complete"]


def test_two_processes_materialise_one_model_safely(tmp_path):
    cache = tmp_path / "cache"
    script = ("import sys; from selfdistill.models import materialize_hf, resolve_model\n"
              "from transformers import AutoConfig\n"
              "path = materialize_hf(resolve_model('smollm2-135m'))\n"
              "AutoConfig.from_pretrained(path); print(path)\n")
    env = {**os.environ, "SELFDISTILL_CACHE": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    paths = {o[0].strip().splitlines()[-1] for o in outs}
    assert len(paths) == 1
    hf = cache / "hf"
    assert sorted(p.name for p in hf.iterdir() if p.is_dir()) == [os.path.basename(paths.pop())]  # no leftovers
    # and a third use verifies the finished copy instead of writing it again
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0
