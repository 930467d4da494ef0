"""`analyze`: per-position statistics checked against a direct computation, classes, and
the CLI's files, on tiny models built from a config."""

import json

import pytest
import torch

from selfdistill.analyze import (
    AnalyzeConfig,
    analyze,
    batch_stats,
    end_of_turn_id,
    position_stats,
    response_stats,
    tokenized,
)
from selfdistill.cli import main
from selfdistill.distributions import decoded
from selfdistill.generation import Truncation

TRUNC = Truncation(top_k=20, top_p=0.8, min_p=0.0)

ROWS = [{"prompt": [{"role": "user", "content": "Write a function that adds two numbers."}],
         "completion": "```python\ndef add(a, b):\n    return a + b\n```"},
        {"prompt": [{"role": "user", "content": "Print hello."}], "completion": "```python\nprint('hello')\n```"}]


@pytest.fixture(scope="module")
def peaked_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with its (tied) embeddings scaled up: sharp next-token distributions,
    so some positions are locks, and a model that differs from the tiny one."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(100)
    out = tmp_path_factory.mktemp("peaked")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def _config(tmp_path, samples, base, ssd, **kw):
    return AnalyzeConfig(samples=str(samples), base=str(base), ssd=str(ssd), out=str(tmp_path / "a"),
                         truncation=TRUNC, progress=False, bootstrap_samples=200, **kw)


def test_position_stats_match_a_direct_computation():
    torch.manual_seed(0)
    logits = torch.randn(5, 500) * 4
    cfg = AnalyzeConfig(samples="x", base="x", ssd="x", out="x", truncation=TRUNC, t_eval=[0.5, 1.0, 2.0])
    s = position_stats(logits, cfg)
    p = torch.softmax(logits, -1)
    sp, _ = p.sort(-1, descending=True)
    assert torch.allclose(s["top1"], sp[:, 0]) and torch.allclose(s["top20"], sp[:, :20].sum(-1), atol=1e-6)
    assert torch.allclose(s["entropy"], -(p * p.log()).sum(-1), atol=1e-5)
    q1 = decoded(logits.sort(-1, descending=True)[0], 1.0, 20, 0.8, 0.0)
    assert torch.allclose(s["tail"], 1 - (sp * (q1 > 0)).sum(-1), atol=1e-6)
    assert torch.equal(s["surviving"][:, 1], (q1 > 0).sum(-1).double())
    assert (s["surviving"][:, 0] <= s["surviving"][:, 2]).all()  # hotter keeps more tokens


def test_response_statistics_equal_those_of_a_plain_full_forward_pass(peaked_model_dir):
    """Chunked, logits kept at response positions only, top-k rows only: the same numbers
    as one full forward pass of the whole sequence, position by position; the last target
    is the end-of-turn token of a response that stopped, and none ends one cut at max_tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(peaked_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(peaked_model_dir)
    eot = end_of_turn_id(tok)
    assert tok.convert_ids_to_tokens(eot) == "<|im_end|>"
    (ids, n_prompt), (cut, _) = tokenized(tok, [ROWS[0], {**ROWS[0], "finish_reason": "length"}], None)
    assert ids[-1] == eot and cut == ids[:-1]
    cfg = AnalyzeConfig(samples="x", base="x", ssd="x", out="x", truncation=TRUNC, t_eval=[0.7, 1.2],
                        chunk_positions=5)
    got = response_stats(model, ids, n_prompt, cfg)
    with torch.no_grad():
        full = model(torch.tensor([ids])).logits[0]
    want = position_stats(full[n_prompt - 1:-1], cfg)
    assert got["top1"].shape[0] == len(ids) - n_prompt
    for key in want:
        assert torch.allclose(got[key].double(), want[key].double(), atol=1e-4), key
    p = torch.softmax(full[n_prompt - 1:-1].double(), -1)
    assert torch.allclose(got["top1"].double(), p.max(-1).values, atol=1e-5)
    assert torch.allclose(got["entropy"].double(), -(p * p.clamp_min(1e-300).log()).sum(-1), atol=1e-4)


def test_batched_forward_passes_give_the_one_at_a_time_statistics(tmp_path, write_jsonl, peaked_model_dir):
    """The GPU path (several right-padded responses per forward pass, the LM head only at
    response positions) against the CPU default (one response per pass), per position and
    through the whole stage on the CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(peaked_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(peaked_model_dir)
    rows = ROWS + [{**ROWS[0], "completion": "Sure: ```python\nx = 1\n```", "finish_reason": "length"}]
    seqs = tokenized(tok, rows, None)
    assert len({len(ids) for ids, _ in seqs}) == 3  # padding really happens
    cfg = AnalyzeConfig(samples="x", base="x", ssd="x", out="x", truncation=TRUNC, t_eval=[0.7, 1.2],
                        chunk_positions=4)
    for got, (ids, n_prompt) in zip(batch_stats(model, seqs, cfg), seqs):
        want = response_stats(model, ids, n_prompt, cfg)
        for key in want:
            assert torch.allclose(got[key].double(), want[key].double(), atol=1e-4), key
    samples = write_jsonl("s.jsonl", rows)
    one = analyze(_config(tmp_path / "one", samples, peaked_model_dir, peaked_model_dir, device="cpu"))
    batched = analyze(_config(tmp_path / "batched", samples, peaked_model_dir, peaked_model_dir, device="cpu",
                              batch_size=2))
    assert one["models"]["base"]["device"] == "cpu"
    assert _close(one["diagnostics"], batched["diagnostics"])  # equal to float rounding
    assert _close(one["differences"], batched["differences"])


def _close(a, b, tol=1e-5) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= tol * max(1.0, abs(a))
    return a == b


def test_same_model_twice_gives_identical_diagnostics(tmp_path, write_jsonl, peaked_model_dir):
    samples = write_jsonl("s.jsonl", ROWS)
    r = analyze(_config(tmp_path, samples, peaked_model_dir, peaked_model_dir))
    assert r["diagnostics"]["base"] == r["diagnostics"]["ssd"]
    assert all(v["delta"] == 0 for d in r["differences"].values() for v in d.values()
               if not isinstance(v["delta"], list))
    total = sum(r["diagnostics"]["base"][c]["positions"] for c in ("lock", "fork", "other"))
    assert total == r["speed"]["base"]["positions"] > 10
    assert r["diagnostics"]["base"]["lock"]["positions"] > 0  # the peaked model has locks


def test_two_models_compared_on_the_base_models_positions(tmp_path, write_jsonl, tiny_model_dir, peaked_model_dir):
    samples = write_jsonl("s.jsonl", ROWS)
    r = analyze(_config(tmp_path, samples, peaked_model_dir, tiny_model_dir))
    base, ssd = r["diagnostics"]["base"], r["diagnostics"]["ssd"]
    for cls in ("lock", "fork", "other"):
        assert base[cls]["positions"] == ssd[cls]["positions"]
    # the unscaled tiny model is nearly uniform: far less top-1 mass at the base's locks
    assert ssd["lock"]["top1_mass"] < 0.5 < base["lock"]["top1_mass"]
    assert r["thresholds"]["lock"] == "base top-1 mass >= 0.9"
    # positions are binned by the BASE model's top-20 mass for both models
    assert base["all"]["positions_by_base_top20_mass"] == ssd["all"]["positions_by_base_top20_mass"]
    # every diagnostic has a bootstrap interval around it, and the difference a paired one
    lo, hi = base["lock"]["interval"]["top1_mass"]
    assert lo <= base["lock"]["top1_mass"] <= hi
    d = r["differences"]["lock"]["top1_mass"]
    assert d["low"] <= d["delta"] <= d["high"] < 0
    assert len(base["lock"]["interval"]["surviving_tokens"][0]) == len(r["config"]["t_eval"])


def test_analyze_cli_writes_json_and_plots_and_refuses_bad_rows(tmp_path, write_jsonl, capsys, tiny_model_dir):
    samples = write_jsonl("s.jsonl", ROWS)
    out = tmp_path / "cli"
    args = ["analyze", "--samples", str(samples), "--base", str(tiny_model_dir), "--ssd", str(tiny_model_dir),
            "--top-k", "20", "--top-p", "0.95", "--min-p", "0", "--t-eval", "0.5,1.0", "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    assert "positions" in capsys.readouterr().out
    data = json.loads((out / "analyze.json").read_text())
    assert data["config"]["t_eval"] == [0.5, 1.0] and data["models"]["base"]["content"]
    assert (out / "analyze.png").stat().st_size > 1000 and (out / "analyze.svg").exists()
    bad = write_jsonl("bad.jsonl", [{"prompt": "not messages", "completion": "x"}])
    assert main(args[:2] + [str(bad)] + args[3:]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert main(["analyze", "--samples", str(samples), "--base", "x", "--ssd", "y", "--out", str(out)]) == 2
    assert "missing required key 'truncation'" in capsys.readouterr().err
