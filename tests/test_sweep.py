"""`sweep`: the best-tuned comparison picks T_eval on one half and reports on the other;
cells are reused with the same settings and refused with others (tiny model, real judge)."""

import json
import typing

import pytest

from selfdistill.analyze import AnalyzeConfig
from selfdistill.cli import main
from selfdistill.config import build
from selfdistill.errors import SelfdistillError
from selfdistill.generation import DecodingConfig, Truncation
from selfdistill.sweep import EvalGrid, summarise
from selfdistill.toy import ToyConfig


def _results(correct_by_task, n=1):
    return {"problems": [{"task_id": t, "difficulty": "easy" if i % 4 else "hard", "n": n, "correct": c}
                         for i, (t, c) in enumerate(correct_by_task.items())]}


def _summary(cells, selection="crossfit", n=1):
    return summarise(cells, {m: n for m in cells}, selection, "pass@1", 200, 0)


TASKS = [f"t{i}" for i in range(8)]
A, B = TASKS[0::2], TASKS[1::2]


def test_crossfitting_scores_every_problem_at_a_temperature_chosen_without_it():
    """By hand: the base model solves half A only at T 0.5 and half B only at T 1.0. Picked
    on A it decodes B at T 0.5 (0 of 4); picked on B it decodes A at T 1.0 (0 of 4): 0%.
    Tuned on all problems it would claim 50%. SSD solves everything at T 0.5."""
    base = {0.5: _results({t: int(t in A) for t in TASKS}), 1.0: _results({t: int(t in B) for t in TASKS})}
    ssd = {0.5: _results({t: 1 for t in TASKS}), 1.0: _results({t: 0 for t in TASKS})}
    s = _summary({"base": base, "ssd": ssd})
    assert [(f["fold"], f["t_eval"], f["selection_score"]) for f in s["best"]["base"]["folds"]] == [
        ("A", 0.5, 1.0), ("B", 1.0, 1.0)]
    assert s["best"]["base"]["t_eval"] == "0.5/1" and s["best"]["ssd"]["t_eval"] == "0.5"
    assert s["chosen"]["base"] == {t: (0.5 if t in B else 1.0) for t in TASKS}
    assert s["best"]["base"]["report"]["pass@1"] == 0.0 and s["scored_problems"] == 8
    overall = [c for c in s["comparisons"] if c["subset"] == "overall"]
    (row,) = overall
    assert (row["wins"], row["losses"], row["problems"], row["delta"]) == (8, 0, 8, pytest.approx(1.0))
    assert row["sign_test_p"] == pytest.approx(2 / 2 ** 8)
    assert {c["subset"] for c in s["comparisons"]} == {"overall", "easy", "hard"}
    assert s["headlines"][0].startswith("ssd at T 0.5 vs base at T 0.5/1 (picked on half A/B): +100.0 pass@1 [+100.0, +100.0] over 8 "
                                        "problems, 8 wins / 0 losses")
    # the difference at each fixed T_eval, over every problem
    assert [(r["t_eval"], r["delta"]) for r in s["fixed_t_eval"]] == [(0.5, 0.5), (1.0, -0.5)]
    # split: picked on A, reported on B only
    s_split = _summary({"base": base, "ssd": ssd}, "split")
    assert s_split["scored_problems"] == 4 and s_split["best"]["base"]["report"]["pass@1"] == 0.0
    # all: tuned on its own test set, the base model looks better than it is
    s_all = _summary({"base": base, "ssd": ssd}, "all")
    assert s_all["best"]["base"]["report"]["pass@1"] == 0.5 and "optimistic" in s_all["selection_caveat"]


def test_a_greedy_cell_is_decoded_once_and_counts_as_n_identical_responses():
    grid = EvalGrid(top_k=20, top_p=0.8, min_p=0.0, t_eval=[0.0, 0.7], max_tokens=8, n=4, seed=0)
    assert grid.decoding(0.0).n == 1 and grid.decoding(0.7).n == 4
    assert grid.decoding(0.7).truncation() == Truncation(top_k=20, top_p=0.8, min_p=0.0)
    greedy = _results({t: int(t in A) for t in TASKS})  # one response each
    sampled = _results({t: 1 for t in TASKS}, n=4)
    s = summarise({"m": {0.0: greedy, 0.7: sampled}}, {"m": 4}, "all", "pass@1", 100, 0)
    assert s["curves"]["m"]["0"]["pass@1"] == 0.5 and s["curves"]["m"]["0"]["pass@2"] == 0.5
    assert s["curves"]["m"]["0"]["n_min"] == 4


def test_truncation_is_validated_in_one_place_for_every_stage():
    for cls, extra in ((Truncation, {}), (EvalGrid, {"t_eval": [0.5], "max_tokens": 8, "n": 1, "seed": 0}),
                       (DecodingConfig, {"temperature": 0.5, "max_tokens": 8, "n": 1, "seed": 0})):
        with pytest.raises(ValueError, match="top_p must be in"):
            cls(top_k=0, top_p=1.5, min_p=0.0, **extra)
    with pytest.raises(SelfdistillError, match="top_p must be in"):
        build(AnalyzeConfig, {"samples": "s", "base": "b", "ssd": "s", "out": "o",
                              "truncation": {"top_k": 0, "top_p": 0.0, "min_p": 0.0}})
    with pytest.raises(SelfdistillError, match="min_p must be in"):
        build(ToyConfig, {"eval_truncation": {"top_k": 0, "top_p": 1.0, "min_p": 1.0}})
    assert issubclass(DecodingConfig, Truncation) and issubclass(EvalGrid, Truncation)
    hints = typing.get_type_hints(AnalyzeConfig)
    assert hints["truncation"] is Truncation


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
    assert set(data["curves"]["base"]) == {"0", "1"} and data["scored_problems"] == 4
    greedy = json.loads((out / "base" / "T0" / "results.json").read_text())
    assert {p["n"] for p in greedy["problems"]} == {1}  # decoded once, not n times
    assert (out / "difference.png").exists()
    assert (out / "base" / "T1" / "results.json").exists() and (out / "sweep.png").exists()
    cell = json.loads((out / "ssd" / "T1" / "results.json").read_text())
    assert cell["config"]["decoding"] == {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0,
                                          "max_tokens": 8, "n": 2, "seed": 0}
    assert main(args) == 0
    assert capsys.readouterr().out.count("[skip]") == 4
    assert main(args[:-3] + ["--max-tokens", "9", "--out", str(out), "--no-progress"]) == 2
    assert "T0 is stale: settings.decoding.max_tokens: 8 -> 9" in capsys.readouterr().err
