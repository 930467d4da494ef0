"""`toy` and the exact decoding distribution it and `analyze` share."""

import json

import pytest
import torch

from selfdistill.cli import main
from selfdistill.distributions import decoded, entropy
from selfdistill.generation import Truncation
from selfdistill.toy import ToyConfig, run_toy


@pytest.mark.parametrize("t,k,p,m", [(1.0, 0, 1.0, 0.0), (0.7, 20, 0.8, 0.0), (1.6, 20, 0.8, 0.0),
                                     (1.3, 0, 0.9, 0.05), (0.5, 5, 1.0, 0.1), (2.0, 50, 0.95, 0.0)])
def test_decoded_matches_transformers_logits_processors(t, k, p, m):
    """Same distribution as transformers' own warpers, applied in the same order."""
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        MinPLogitsWarper,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    torch.manual_seed(0)
    logits = torch.randn(4, 300, dtype=torch.float64) * 3
    procs = LogitsProcessorList([TemperatureLogitsWarper(t)] + ([TopKLogitsWarper(k)] if k else [])
                                + ([TopPLogitsWarper(p)] if p < 1 else []) + ([MinPLogitsWarper(m)] if m else []))
    theirs = torch.softmax(procs(None, logits.clone()), dim=-1)
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    ours = decoded(sorted_logits, t, k, p, m)
    assert torch.allclose(ours, theirs.gather(-1, order), atol=1e-12)


def test_greedy_and_entropy():
    probs = decoded(torch.tensor([[3.0, 2.0, 1.0]]), 0.0, 0, 1.0, 0.0)
    assert probs.tolist() == [[1.0, 0.0, 0.0]]
    assert entropy(probs).item() == 0.0
    assert entropy(torch.full((1, 4), 0.25)).item() == pytest.approx(torch.log(torch.tensor(4.0)).item())


def test_ssd_beats_the_best_tuned_base_with_truncation():
    """The paper's claim, in the toy: at pass@10, SSD at its best T_eval beats the base
    model at its best T_eval; the locks lose their tail and the base collapses at high T."""
    r = run_toy(ToyConfig())
    assert r["best"]["pass@10"]["ssd_minus_base"] > 0.02
    assert r["mass"]["ssd"]["lock_correct"] == pytest.approx(1.0)
    assert r["curves"]["base"]["pass@10"][-1] < 0.05 < 0.5 < r["curves"]["ssd"]["pass@10"][-1]
    # calibrated fork: one try is best greedy, and there the two models agree
    assert r["best"]["pass@1"]["base"]["t_eval"] == r["best"]["pass@1"]["ssd"]["t_eval"] == 0.0
    assert r["best"]["pass@1"]["ssd_minus_base"] == pytest.approx(0.0)


def test_without_truncation_ssd_is_only_a_change_of_temperature():
    """No sampling truncation: the SSD model at T_eval IS the base model at T_train * T_eval."""
    base = run_toy(ToyConfig(t_train=1.6, train_truncation=Truncation(top_k=0, top_p=1.0, min_p=0.0), t_eval=[0.8, 1.2, 1.6]))
    ssd = run_toy(ToyConfig(t_train=1.6, train_truncation=Truncation(top_k=0, top_p=1.0, min_p=0.0), t_eval=[0.5, 0.75, 1.0]))
    for metric in ("pass@1", "pass@5", "pass@10"):
        assert ssd["curves"]["ssd"][metric] == pytest.approx(base["curves"]["base"][metric], abs=1e-12)


def test_too_cold_a_training_temperature_loses_the_fork():
    r = run_toy(ToyConfig(t_train=0.6))
    assert r["best"]["pass@10"]["ssd_minus_base"] < -0.05


def test_toy_cli_writes_json_and_plots(tmp_path, capsys):
    assert main(["toy", "--out", str(tmp_path), "--k", "1,10", "--locks", "4"]) == 0
    out = capsys.readouterr().out
    assert "pass@10" in out and "SSD best" in out
    data = json.loads((tmp_path / "toy.json").read_text())
    assert data["config"]["locks"] == 4 and data["config"]["k"] == [1, 10]
    assert (tmp_path / "toy.png").stat().st_size > 1000 and (tmp_path / "toy.svg").exists()
    assert main(["toy", "--fork-probs", "0.2,0.5"]) == 2
    assert "descending" in capsys.readouterr().err
