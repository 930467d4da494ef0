"""`sample` on a tiny local model: determinism, filters, and resume after a real kill."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from selfdistill.cli import main
from selfdistill.generation import DecodingConfig
from selfdistill.sampling import SampleConfig, apply_filter, sample

DEC = DecodingConfig(temperature=1.0, top_k=20, top_p=0.9, min_p=0.0, max_tokens=24, n=2, seed=7)


def rows_of(path):
    return [json.loads(line) for line in open(path)]


def run_sample(out, tiny_model_dir, **kw):
    cfg = SampleConfig(model=str(tiny_model_dir), problems="humaneval", out=str(out), decoding=DEC,
                       batch_size=3, limit=5, progress=False, **kw)
    return sample(cfg)


def test_same_seed_same_samples_and_rows_record_everything(tmp_path, tiny_model_dir):
    run_sample(tmp_path / "a", tiny_model_dir)
    run_sample(tmp_path / "b", tiny_model_dir)
    a, b = rows_of(tmp_path / "a" / "generations.jsonl"), rows_of(tmp_path / "b" / "generations.jsonl")
    assert a == b and len(a) == 10
    row = a[0]
    assert row["decoding"] == {"temperature": 1.0, "top_k": 20, "top_p": 0.9, "min_p": 0.0,
                               "max_tokens": 24, "n": 2, "seed": 7}
    assert row["prompt"][0]["role"] == "user" and row["finish_reason"] in ("stop", "length")
    assert len({r["completion"] for r in a}) > 1  # it really samples
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())["summary"]
    assert summary["generated"] == 10 and 0 <= summary["with_code_share"] <= 1


def test_different_seed_changes_samples(tmp_path, tiny_model_dir):
    run_sample(tmp_path / "a", tiny_model_dir)
    cfg = SampleConfig(model=str(tiny_model_dir), problems="humaneval", out=str(tmp_path / "c"),
                       decoding=DecodingConfig(**{**DEC.__dict__, "seed": 8}), batch_size=3, limit=5,
                       progress=False)
    sample(cfg)
    assert rows_of(tmp_path / "a" / "generations.jsonl") != rows_of(tmp_path / "c" / "generations.jsonl")


def test_resume_from_torn_and_partial_batches_matches_uninterrupted(tmp_path, tiny_model_dir):
    run_sample(tmp_path / "full", tiny_model_dir)
    full = (tmp_path / "full" / "generations.jsonl").read_text().splitlines(keepends=True)
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "stage.json").write_bytes((tmp_path / "full" / "stage.json").read_bytes())
    # batch 0 complete, one row of batch 1, then half a line
    (crashed / "generations.jsonl").write_text("".join(full[:4]) + full[4][:30])
    run_sample(crashed, tiny_model_dir)
    assert (crashed / "generations.jsonl").read_text() == "".join(full)


def test_resume_with_other_settings_is_refused(tmp_path, tiny_model_dir, capsys):
    run_sample(tmp_path / "a", tiny_model_dir)
    code = main(["sample", "--model", str(tiny_model_dir), "--problems", "humaneval", "--limit", "5",
                 "--out", str(tmp_path / "a"), "--temperature", "0.5", "--top-k", "20", "--top-p", "0.9",
                 "--min-p", "0", "--max-tokens", "24", "--n", "2", "--seed", "7", "--batch-size", "3",
                 "--no-progress"])
    assert code == 2
    assert "other settings or inputs (settings.decoding.temperature: 1.0 -> 0.5" in capsys.readouterr().err


def test_killed_process_resumes_to_identical_file(tmp_path, tiny_model_dir):
    args = [sys.executable, "-m", "selfdistill.cli", "sample", "--model", str(tiny_model_dir),
            "--problems", "humaneval", "--limit", "60", "--temperature", "1.0", "--top-k", "0",
            "--top-p", "1.0", "--min-p", "0", "--max-tokens", "16", "--n", "1", "--seed", "3",
            "--batch-size", "1", "--no-progress"]
    subprocess.run(args + ["--out", str(tmp_path / "ref")], check=True, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gen = out / "generations.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (gen.exists() and gen.read_text().count("\n") >= 5):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = gen.read_text().count("\n")
    assert 5 <= partial < 60, "the kill must land mid-run"
    subprocess.run(args + ["--out", str(out)], check=True, capture_output=True)
    assert gen.read_text() == (tmp_path / "ref" / "generations.jsonl").read_text()


@pytest.mark.parametrize("name,kept", [("none", 5), ("paper", 3), ("release", 2)])
def test_filters(name, kept):
    rows = [{"completion": c} for c in ["", "one line", "a\nb", "a\nb\nccccccccc", "x\ny\nzzzzzzzzzzzzzzzzzz"]]
    assert len(apply_filter(rows, name)) == kept


def test_resume_is_keyed_on_the_models_content_not_its_name(tmp_path, tiny_model_dir, capsys):
    """A model directory retrained in place must not resume into the file its old weights
    started (and a prompt template change is keyed the same way)."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    out = tmp_path / "a"
    run_sample(out, model_dir)
    record = json.loads((out / "stage.json").read_text())
    assert record["inputs"]["model"].startswith("sha256:") and len(record["settings"]["templates_sha256"]) == 64
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(model_dir)  # retrained in place
    from selfdistill.errors import SelfdistillError

    with pytest.raises(SelfdistillError, match="inputs.model: sha256:"):
        run_sample(out, model_dir)
