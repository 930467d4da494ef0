"""`run`: the whole loop on a tiny local model; rerun skips finished stages."""

import json

import yaml

from selfdistill.cli import main

DEC = {"temperature": 1.0, "top_k": 20, "top_p": 0.9, "min_p": 0.0, "max_tokens": 16, "n": 2, "seed": 0}


def test_run_produces_report_and_skips_finished_stages(tmp_path, tiny_model_dir, capsys):
    cfg = {
        "out": str(tmp_path / "run"), "model": str(tiny_model_dir),
        "train_problems": "leetcode:train", "train_limit": 6,
        "eval_problems": "humaneval", "eval_limit": 4, "batch_size": 4,
        "sample_decoding": {**DEC, "n": 1}, "base_decoding": DEC, "ssd_decoding": {**DEC, "temperature": 0.7},
        "training": {"method": "full", "max_steps": 2, "global_batch_size": 2, "per_device_batch_size": 2,
                     "learning_rate": 1e-3, "min_learning_rate": 1e-4, "bf16": False},
        "bootstrap_samples": 200, "progress": False,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 0
    run = tmp_path / "run"
    report = (run / "report.md").read_text()
    assert "| overall | 4 | 1 |" in report and "| overall | 4 | 2 |" in report
    assert "95% interval" in report and "with extractable code" in report
    resolved = yaml.safe_load((run / "config.resolved.yaml").read_text())
    assert resolved["ssd_decoding"]["temperature"] == 0.7
    assert resolved["training_resolved"]["weight_decay"] == 0.1
    ssd = json.loads((run / "ssd_eval" / "results.json").read_text())
    assert ssd["config"]["model"].endswith("train/model")
    # what really ran is recorded: the sampler transformers built and the resolved dtype
    assert ssd["config"]["effective_sampler"]["transforms"] == [
        {"name": "temperature", "value": 0.7}, {"name": "top_k", "value": 20}, {"name": "top_p", "value": 0.9}]
    assert ssd["config"]["generation"]["dtype"] in ("float32", "bfloat16")
    assert ssd["config"]["generation"]["dtype_reason"].startswith("auto")
    assert ssd["config"]["provenance"]["cpu"]
    capsys.readouterr()
    cfg["engine"] = {"dtype": "auto", "concurrency": 3}  # how fast, not what: stages are reused
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("[skip]") == 4
    # a finished stage is never reused under other settings
    cfg["ssd_decoding"]["temperature"] = 0.9
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ssd_eval was made with other settings (decoding)" in err
    assert yaml.safe_load((run / "config.resolved.yaml").read_text())["ssd_decoding"]["temperature"] == 0.7


def test_trained_model_is_accepted_by_sample(tmp_path, tiny_model_dir):
    from selfdistill.generation import DecodingConfig
    from selfdistill.sampling import SampleConfig, sample
    from selfdistill.training import TrainConfig, train

    data = tmp_path / "s.jsonl"
    data.write_text(json.dumps({"prompt": [{"role": "user", "content": "hi"}], "completion": "```python\nx=1\n```"}) + "\n")
    model = train(TrainConfig(model=str(tiny_model_dir), data=str(data), out=str(tmp_path / "t"), max_steps=1,
                              global_batch_size=1, per_device_batch_size=1, bf16=False, progress=False))["model_dir"]
    summary = sample(SampleConfig(model=model, problems="humaneval", out=str(tmp_path / "s"), limit=2,
                                  decoding=DecodingConfig(**{**DEC, "n": 1}), progress=False))
    assert summary["generated"] == 2


def test_run_config_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("out: x\nmodel: m\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing required key" in err[0]


def test_run_stops_after_sampling_and_resumes_after_an_external_train(tmp_path, tiny_model_dir, capsys):
    """The many-GPU route: run --stop-after sample, train from RUN/train.yaml on its own
    (as `accelerate launch ... train --config` does), rerun: the finished stages are skipped."""
    cfg = {
        "out": str(tmp_path / "run"), "model": str(tiny_model_dir),
        "train_problems": "leetcode:train", "train_limit": 4,
        "eval_problems": "humaneval", "eval_limit": 2, "batch_size": 4,
        "sample_decoding": {**DEC, "n": 1}, "base_decoding": {**DEC, "n": 1}, "ssd_decoding": {**DEC, "n": 1},
        "training": {"method": "full", "max_steps": 1, "global_batch_size": 2, "per_device_batch_size": 2,
                     "learning_rate": 1e-3, "min_learning_rate": 1e-4, "bf16": False},
        "bootstrap_samples": 100, "progress": False,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert main(["run", str(path), "--stop-after", "sample"]) == 0
    assert "[stop] after sample" in capsys.readouterr().out
    assert (run / "sample" / "summary.json").exists() and not (run / "train").exists()
    train_yaml = yaml.safe_load((run / "train.yaml").read_text())
    assert train_yaml["out"] == str(run / "train") and train_yaml["max_steps"] == 1
    assert main(["train", "--config", str(run / "train.yaml"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["run", str(path)]) == 0
    assert capsys.readouterr().out.count("[skip]") == 3
    assert (run / "report.html").exists()
