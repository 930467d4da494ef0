"""`sweep`: the best-tuned comparison picks T_eval on one half and reports on the other;
cells are reused with the same settings and refused with others (tiny model, real judge)."""

import json

import pytest

from selfdistill.cli import main
from selfdistill.sweep import SweepConfig, summarise


def _results(correct_by_task):
    return {"problems": [{"task_id": t, "difficulty": "easy", "n": 1, "correct": c}
                         for t, c in correct_by_task.items()]}


def _config(**kw):
    base = dict(models=["base=a", "ssd=b"], problems="humaneval", out="x", t_eval=[0.0, 1.0], top_k=0,
                top_p=1.0, min_p=0.0, max_tokens=8, n=1, seed=0, bootstrap_samples=200)
    return SweepConfig(**{**base, **kw})


def test_best_temperature_is_chosen_on_the_selection_half_only():
    tasks = [f"t{i}" for i in range(8)]
    sel, rep = tasks[0::2], tasks[1::2]
    # base: T=1 looks best on the selection half but is worse on the report half
    base = {0.0: _results({t: int(t in rep) for t in tasks}), 1.0: _results({t: int(t in sel) for t in tasks})}
    ssd = {0.0: _results({t: 0 for t in tasks}), 1.0: _results({t: 1 for t in tasks})}
    s = summarise(_config(), {"base": base, "ssd": ssd})
    assert s["best"]["base"]["t_eval"] == 1.0 and s["best"]["base"]["report"]["pass@1"] == 0.0
    assert s["best"]["ssd"]["t_eval"] == 1.0
    (row,) = s["comparisons"]
    assert (row["wins"], row["losses"], row["problems"], s["report_problems"]) == (4, 0, 4, 4)
    assert row["delta"] == pytest.approx(1.0) and "other half" in s["selection_caveat"]
    # tuned on the same problems, the base model's best looks better than it is
    s_all = summarise(_config(selection="all"), {"base": base, "ssd": ssd})
    assert s_all["best"]["base"]["report"]["pass@1"] == 0.5 and "optimistic" in s_all["selection_caveat"]


def test_bad_sweep_configs_are_one_line_errors(capsys):
    args = ["sweep", "--models", "base", "--problems", "humaneval", "--out", "x", "--t-eval", "0",
            "--top-k", "0", "--top-p", "1", "--min-p", "0", "--max-tokens", "8", "--n", "1", "--seed", "0"]
    assert main(args) == 2
    assert "expected NAME=MODEL" in capsys.readouterr().err
    assert main(args[:2] + ["a=x"] + args[3:] + ["--select-metric", "pass@5"]) == 2
    assert "k <= n" in capsys.readouterr().err


def test_sweep_runs_reuses_and_refuses_cells(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--models", f"base={tiny_model_dir},ssd={tiny_model_dir}", "--problems", "humaneval",
            "--limit", "4", "--t-eval", "0,1.0", "--top-k", "0", "--top-p", "1", "--min-p", "0",
            "--max-tokens", "8", "--n", "2", "--seed", "0", "--batch-size", "4", "--timeout-s", "5",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "no solved problems" in printed  # a random tiny model solves nothing
    data = json.loads((out / "sweep.json").read_text())
    assert set(data["curves"]["base"]) == {"0", "1"} and data["report_problems"] == 2
    assert (out / "base" / "T1" / "results.json").exists() and (out / "sweep.png").exists()
    cell = json.loads((out / "ssd" / "T1" / "results.json").read_text())
    assert cell["config"]["decoding"] == {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0,
                                          "max_tokens": 8, "n": 2, "seed": 0}
    assert main(args) == 0
    assert capsys.readouterr().out.count("[skip]") == 4
    assert main(args[:-3] + ["--max-tokens", "9", "--out", str(out), "--no-progress"]) == 2
    assert "T0 is stale: settings.decoding.max_tokens: 8 -> 9" in capsys.readouterr().err
