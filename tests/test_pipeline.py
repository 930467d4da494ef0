"""`run`: the whole loop on a tiny local model, and a run directory that never mixes stale
results (every stage keyed on the content of its inputs; `--plan`, `--rebuild`, KEY=VALUE
overrides). Each defect of the issue that introduced the stage records is a test here:
new data with an old model, a changed judge limit, changed data at the same path, a crash
between the model and its records."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from selfdistill.cli import main
from selfdistill.files import sha256_file

DEC = {"temperature": 1.0, "top_k": 20, "top_p": 0.9, "min_p": 0.0, "max_tokens": 16, "n": 2, "seed": 0}
GRID = {"top_k": 20, "top_p": 0.9, "min_p": 0.0, "max_tokens": 16, "n": 2, "seed": 0}
STAGE_NAMES = ["sample", "base_eval", "train", "ssd_eval", "compare", "analyze", "report"]


def _config(out, model, **extra):
    return {
        "out": str(out), "model": str(model),
        "train_problems": "leetcode:train", "train_limit": 6,
        "eval_problems": "humaneval", "eval_limit": 4, "batch_size": 4,
        "sample_decoding": {**DEC, "n": 1}, "base_eval": {**GRID, "t_eval": [0.0, 1.0]},
        "ssd_eval": {**GRID, "t_eval": [0.7, 1.0]}, "analysis_responses": 3,
        "analyze": {"bootstrap_samples": 50, "t_eval": [0.5, 1.0]}, "note": "no power",
        "training": {"method": "full", "max_steps": 2, "global_batch_size": 2, "per_device_batch_size": 2,
                     "learning_rate": 1e-3, "min_learning_rate": 1e-4, "bf16": False},
        "bootstrap_samples": 200, "progress": False, **extra,
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model_dir):
    """A finished run; tests copy it (`fresh_copy`) before changing anything."""
    root = tmp_path_factory.mktemp("pipeline")
    cfg = _config(root / "run", tiny_model_dir)
    (root / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(root / "run.yaml")]) == 0
    return root


@pytest.fixture
def fresh_copy(finished, tmp_path):
    """(config path, config dict, run dir) of a private copy of the finished run."""
    run = tmp_path / "run"
    shutil.copytree(finished / "run", run)
    cfg = yaml.safe_load((finished / "run.yaml").read_text())
    cfg["out"] = str(run)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg, run


def plan_of(capsys, path, *extra):
    capsys.readouterr()
    assert main(["run", str(path), "--plan", *extra]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    return {line.split()[0]: (line.split()[1], line) for line in lines}


def test_run_produces_report_and_skips_fresh_stages(finished, fresh_copy, capsys):
    path, cfg, run = fresh_copy
    report = (run / "report" / "report.md").read_text()
    assert "| overall | 4 | 1 |" in report and "| overall | 4 | 2 |" in report
    assert "95% interval" in report and "with extractable code" in report and "> no power" in report
    resolved = yaml.safe_load((run / "config.resolved.yaml").read_text())
    assert resolved["ssd_eval"]["t_eval"] == [0.7, 1.0]
    assert resolved["training_resolved"]["weight_decay"] == 0.1
    assert resolved["analyze_resolved"]["truncation"] == {"top_k": 20, "top_p": 0.9, "min_p": 0.0}
    ssd = json.loads((run / "ssd_eval" / "T0.7" / "results.json").read_text())
    # what really ran is recorded: the sampler transformers built and the resolved dtype
    assert ssd["config"]["effective_sampler"]["transforms"] == [
        {"name": "temperature", "value": 0.7}, {"name": "top_k", "value": 20}, {"name": "top_p", "value": 0.9}]
    assert ssd["config"]["generation"]["dtype"] in ("float32", "bfloat16")
    assert ssd["config"]["generation"]["dtype_reason"].startswith("auto")
    assert ssd["config"]["provenance"]["cpu"]
    # the greedy cell decoded each problem once, the sampled cells n times
    greedy = json.loads((run / "base_eval" / "T0" / "results.json").read_text())
    assert {p["n"] for p in greedy["problems"]} == {1} and {p["n"] for p in ssd["problems"]} == {2}
    # every stage has a complete record naming its inputs by content
    dirs = ["base_eval/T0", "base_eval/T1", "sample", "train", "ssd_eval/T0.7", "ssd_eval/T1", "compare",
            "analyze", "report"]
    records = {s: json.loads((run / s / "stage.json").read_text()) for s in dirs}
    assert all(r["complete"] for r in records.values())
    assert records["train"]["inputs"]["data"] == "sha256:" + sha256_file(run / "sample" / "samples.jsonl")
    assert records["ssd_eval/T1"]["inputs"]["model"] == records["train"]["outputs"]["model"]
    assert records["base_eval/T0"]["inputs"]["judge"]["limits"]["timeout_s"] == 6
    assert records["base_eval/T0"]["inputs"]["problems"]["count"] == 4
    assert set(records["compare"]["inputs"]) == {"base/T0", "base/T1", "ssd/T0.7", "ssd/T1"}
    assert records["analyze"]["inputs"]["samples"] == "sha256:" + sha256_file(run / "compare" / "responses.jsonl")
    # best against best, cross-fitted; analyze read both models' compared responses
    compare = json.loads((run / "compare" / "compare.json").read_text())
    assert compare["selection"] == "crossfit" and compare["scored_problems"] == 4
    assert len(compare["best"]["base"]["folds"]) == 2 and compare["headlines"][0].startswith("ssd at T ")
    assert [(r["t_eval"], r["k"]) for r in compare["fixed_t_eval"]] == [(1.0, 1), (1.0, 2)]
    analysis = json.loads((run / "analyze" / "analyze.json").read_text())
    assert analysis["responses_by_source"] == {"base": 3, "ssd": 3}
    assert "interval" in analysis["diagnostics"]["ssd"]["other"]
    capsys.readouterr()
    cfg["engine"] = {"dtype": "auto", "concurrency": 3}  # how fast, not what: stages are reused
    path.write_text(yaml.safe_dump(cfg))
    plan = plan_of(capsys, path)
    assert list(plan) == STAGE_NAMES and [state for state, _ in plan.values()] == ["fresh"] * 7
    assert main(["run", str(path)]) == 0
    assert capsys.readouterr().out.count("[skip]") == 7


def test_a_new_temperature_runs_only_its_cell(fresh_copy, capsys):
    path, cfg, run = fresh_copy
    cfg["ssd_eval"]["t_eval"] = [0.7, 1.0, 1.3]
    path.write_text(yaml.safe_dump(cfg))
    plan = plan_of(capsys, path)
    assert plan["ssd_eval"][0] == "missing" and "T1.3" in plan["ssd_eval"][1]
    t07 = (run / "ssd_eval" / "T0.7" / "stage.json").read_text()
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "[ssd_eval] T_eval 1.3" in out and "[ssd_eval] T_eval 0.7" not in out
    assert (run / "ssd_eval" / "T0.7" / "stage.json").read_text() == t07
    assert set(json.loads((run / "compare" / "compare.json").read_text())["curves"]["ssd"]) == {"0.7", "1", "1.3"}


def test_a_changed_setting_is_refused_then_rebuilt_from_that_stage_on(fresh_copy, capsys):
    path, cfg, run = fresh_copy
    cfg["ssd_eval"]["max_tokens"] = 12
    path.write_text(yaml.safe_dump(cfg))
    plan = plan_of(capsys, path)
    assert plan["ssd_eval"][0] == "stale" and "T0.7: settings.decoding.max_tokens: 16 -> 12" in plan["ssd_eval"][1]
    assert plan["compare"][0] == "stale" and "upstream ssd_eval is stale" in plan["compare"][1]
    assert plan["report"][0] == "stale"
    assert [plan[s][0] for s in ("base_eval", "sample", "train")] == ["fresh"] * 3
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ssd_eval is stale (T0.7: settings.decoding.max_tokens: 16 -> 12" in err[0]
    assert "--rebuild" in err[0]
    train_record = (run / "train" / "stage.json").read_text()
    assert main(["run", str(path), "--rebuild"]) == 0
    out = capsys.readouterr().out
    assert "[rebuild] ssd_eval" in out and out.count("[skip]") == 3
    assert (run / "train" / "stage.json").read_text() == train_record  # upstream untouched
    ssd = json.loads((run / "ssd_eval" / "T0.7" / "results.json").read_text())
    assert ssd["config"]["decoding"]["max_tokens"] == 12
    assert all(state == "fresh" for state, _ in plan_of(capsys, path).values())


def test_new_data_is_never_paired_with_a_model_trained_on_the_old(fresh_copy, capsys):
    """The defect: change sample_decoding, remove sample/ as the error advised, rerun: the
    old model used to be reused with the new data, exit 0."""
    path, cfg, run = fresh_copy
    cfg["sample_decoding"]["temperature"] = 1.2
    path.write_text(yaml.safe_dump(cfg))
    plan = plan_of(capsys, path)
    assert plan["sample"][0] == "stale" and "settings.decoding.temperature: 1.0 -> 1.2" in plan["sample"][1]
    assert plan["train"][0] == "stale" and "upstream sample is stale" in plan["train"][1]
    shutil.rmtree(run / "sample")
    plan = plan_of(capsys, path)
    assert plan["sample"][0] == "missing"
    assert plan["train"][0] == "stale" and "upstream sample is missing" in plan["train"][1]
    assert plan["ssd_eval"][0] == "stale" and plan["base_eval"][0] == "fresh"
    old_model = json.loads((run / "train" / "stage.json").read_text())["outputs"]["model"]
    # the new data is sampled, then the model trained on the old data is refused
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "train is stale (inputs.data: sha256:" in err and "--rebuild" in err
    assert json.loads((run / "sample" / "stage.json").read_text())["complete"]
    assert main(["run", str(path), "--rebuild"]) == 0
    train = json.loads((run / "train" / "stage.json").read_text())
    ssd = json.loads((run / "ssd_eval" / "T1" / "stage.json").read_text())
    assert train["inputs"]["data"] == "sha256:" + sha256_file(run / "sample" / "samples.jsonl")
    assert ssd["inputs"]["model"] == train["outputs"]["model"] != old_model
    rows = [json.loads(line) for line in (run / "sample" / "samples.jsonl").read_text().splitlines()]
    assert all(r["decoding"]["temperature"] == 1.2 for r in rows)


def test_a_changed_judge_limit_makes_both_evaluations_stale(fresh_copy, capsys):
    path, cfg, run = fresh_copy
    plan = plan_of(capsys, path, "sandbox.timeout_s=5")
    for stage in ("base_eval", "ssd_eval"):
        assert plan[stage][0] == "stale" and "inputs.judge.limits.timeout_s: 6 -> 5" in plan[stage][1], plan
    assert plan["sample"][0] == "fresh" and plan["train"][0] == "fresh"
    assert main(["run", str(path), "sandbox.timeout_s=5"]) == 2
    assert "base_eval is stale" in capsys.readouterr().err
    # workers only change how fast: not a judge setting
    assert all(s == "fresh" for s, _ in plan_of(capsys, path, "sandbox.workers=1").values())


def test_changed_data_at_the_same_path_is_stale(fresh_copy, capsys):
    path, cfg, run = fresh_copy
    samples = run / "sample" / "samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    samples.write_text("".join(lines[:-1]))  # same path, other content
    plan = plan_of(capsys, path)
    assert plan["sample"][0] == "stale" and "output samples.jsonl changed" in plan["sample"][1]
    assert plan["train"][0] == "stale"
    # and train itself, run directly, refuses to resume over other data
    train_yaml = yaml.safe_load((run / "train.yaml").read_text())
    train_yaml.update(out=str(run / "train"), data=str(samples))  # train.yaml names the original run
    (run / "train.yaml").write_text(yaml.safe_dump(train_yaml))
    assert main(["train", "--config", str(run / "train.yaml"), "--no-progress"]) == 2
    assert "inputs.data: sha256:" in capsys.readouterr().err


def test_a_crash_between_the_model_and_its_records_resumes(fresh_copy, capsys):
    """train writes model/, then loss.json and train_config.json, then its record: a crash
    in between used to leave a FileNotFoundError on every rerun."""
    path, cfg, run = fresh_copy
    record = json.loads((run / "train" / "stage.json").read_text())
    (run / "train" / "stage.json").write_text(json.dumps({k: record[k] for k in ("stage", "settings", "inputs")}
                                                         | {"complete": False}))
    (run / "train" / "loss.json").unlink()
    (run / "train" / "train_config.json").unlink()
    shutil.rmtree(run / "ssd_eval")  # the crash came before these existed
    for later in ("compare", "analyze", "report"):
        shutil.rmtree(run / later)
    plan = plan_of(capsys, path)
    assert plan["train"][0] == "missing" and "never finished" in plan["train"][1]
    assert main(["run", str(path)]) == 0
    assert json.loads((run / "train" / "stage.json").read_text())["complete"]
    assert (run / "train" / "loss.json").exists() and (run / "report" / "report.html").exists()


def test_overrides_are_applied_before_validation_and_recorded(fresh_copy, capsys):
    path, cfg, run = fresh_copy
    plan = plan_of(capsys, path, "training.max_steps=3", "engine.backend=transformers")
    assert plan["train"][0] == "stale" and "settings.max_steps: 2 -> 3" in plan["train"][1]
    assert main(["run", str(path), "bogus.key=1", "--plan"]) == 2
    assert "unknown key(s) bogus" in capsys.readouterr().err
    assert main(["run", str(path), "training.max_steps"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["run", str(path), "--rebuild", "training.max_steps=3"]) == 0
    resolved = yaml.safe_load((run / "config.resolved.yaml").read_text())
    assert resolved["overrides"] == ["training.max_steps=3"] and resolved["training"]["max_steps"] == 3
    assert "training.max_steps=3" in (run / "report" / "report.md").read_text()


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
    # the benchmark joins two sources: the comparison breaks down by source as well
    cfg = _config(tmp_path / "run", tiny_model_dir, train_limit=4, eval_limit=None,
                  eval_problems="humaneval[:2]+leetcode:eval[:2]")
    cfg["base_eval"] = cfg["ssd_eval"] = {**GRID, "t_eval": [0.0, 1.0], "n": 1}
    cfg["training"]["max_steps"] = 1
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert main(["run", str(path), "--stop-after", "sample"]) == 0
    assert "[stop] after sample" in capsys.readouterr().out
    assert (run / "sample" / "summary.json").exists()
    assert not (run / "base_eval").exists() and not (run / "train").exists()  # the data comes first
    train_yaml = yaml.safe_load((run / "train.yaml").read_text())
    assert train_yaml["out"] == str(run / "train") and train_yaml["max_steps"] == 1
    assert main(["train", "--config", str(run / "train.yaml"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("[skip]") == 2 and "[skip] train" in out  # sample, train
    compared = json.loads((run / "compare" / "compare.json").read_text())
    assert compared["problems"] == 4
    assert {"overall", "humaneval", "leetcode"} <= {c["subset"] for c in compared["comparisons"]}
    assert (run / "report" / "report.html").exists()


def test_a_stated_bf16_that_this_cpu_emulates_is_warned_about_once(tmp_path, tiny_model_dir, capsys):
    """bf16 stated for the engine and training is kept, and `run` says on stderr where this
    CPU only emulates it (an AVX2-only CPU runs a bf16 matmul ~170x slower than fp32);
    `auto` everywhere never warns."""
    import torch

    from selfdistill.generation import native_bf16

    emulates = not native_bf16() and not torch.cuda.is_available()
    stated = _config(tmp_path / "a", tiny_model_dir, engine={"dtype": "bfloat16"})
    stated["training"]["bf16"] = True
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(stated))
    capsys.readouterr()
    assert main(["run", str(tmp_path / "a.yaml"), "--plan"]) == 0
    err = capsys.readouterr().err
    assert (err.count("warning: engine.dtype, training.bf16 state bf16, but this CPU has no native bf16")
            == int(emulates)), err
    auto = _config(tmp_path / "b", tiny_model_dir, engine={"dtype": "auto"})
    auto["training"]["bf16"] = "auto"
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(auto))
    assert main(["run", str(tmp_path / "b.yaml"), "--plan"]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("preset", sorted(Path("configs/paper").glob("*.yaml")), ids=lambda p: p.stem)
def test_paper_presets_validate_end_to_end_with_plan(preset, tmp_path, capsys):
    """Each paper preset states its grid, n and max tokens, and `run --plan` builds every
    stage's config from it; planning a run that has not started needs neither the hub's
    models nor its data."""
    from selfdistill.config import build, read_yaml
    from selfdistill.layout import RunConfig

    config = build(RunConfig, read_yaml(preset))
    for grid in (config.base_eval, config.ssd_eval):
        assert len(grid.t_eval) >= 3 and grid.n == 10 and grid.max_tokens == 65536
    assert config.analyze_config().truncation == config.ssd_eval.truncation()
    plan = plan_of(capsys, preset, f"out={tmp_path / 'run'}")
    assert list(plan) == STAGE_NAMES and all(state == "missing" for state, _ in plan.values())
