"""Through the CLI: all 164 canonical HumanEval solutions pass and every stub fails."""

import json

from selfdistill.cli import main
from selfdistill.problems import load_problems


def test_canonical_pass_and_stubs_fail(tmp_path, capsys):
    rows = []
    for p in load_problems("humaneval").problems:
        solution = p.starter_code + p.metadata["canonical_solution"]
        rows.append({"task_id": p.task_id, "completion": f"Sure.\n```python\n{solution}```\n", "kind": "canon"})
        rows.append({"task_id": p.task_id, "completion": f"```python\n{p.starter_code}    pass\n```"})
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["eval", "--problems", "humaneval", "--completions", str(path),
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["problems"]) == 164
    for prob in results["problems"]:
        canon, stub = prob["samples"]
        assert canon["status"] == "passed", prob["task_id"]
        assert stub["status"] != "passed", prob["task_id"]
    assert results["metrics"]["pass@1"] == 0.5
    assert results["metrics"]["pass@2"] == 1.0
    samples = [json.loads(line) for line in (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 328 and samples[0]["completion"].startswith("Sure.")
    assert "pass@1" in capsys.readouterr().out


def test_completions_with_unknown_task_are_refused(tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "x"}) + "\n"
                    + json.dumps({"task_id": "Nope/1", "completion": "x"}) + "\n")
    assert main(["eval", "--problems", "humaneval", "--completions", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "c.jsonl:2: task_id 'Nope/1'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()


def test_model_eval_without_decoding_parameters_is_refused(tmp_path, capsys):
    assert main(["eval", "--problems", "humaneval", "--model", "smollm2-135m", "--out", str(tmp_path)]) == 2
    assert "decoding" in capsys.readouterr().err
