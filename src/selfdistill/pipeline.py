"""`selfdistill run CONFIG.yaml`: the whole SSD loop in one run directory.

    base eval -> sample (SSD data) -> train -> SSD eval -> report.md

Layout of the run directory (`out`):
    config.resolved.yaml   every setting, defaults included
    train.yaml             the train stage's config (to launch it on many GPUs: docs/training.md)
    base_eval/  sample/  train/  ssd_eval/    each stage's own artifacts
    report.md  report.json                    base vs SSD with paired bootstrap intervals
A stage whose final artifact exists is skipped; an interrupted one resumes (generation
continues its JSONL, training its last checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from selfdistill.config import build, changed_settings, provenance, to_dict
from selfdistill.errors import SelfdistillError
from selfdistill.evaluation import EvalConfig, evaluate, format_table
from selfdistill.files import atomic_write_text
from selfdistill.generation import DecodingConfig, EngineConfig
from selfdistill.judge import SandboxConfig
from selfdistill.report import write_report
from selfdistill.sampling import SampleConfig, format_summary, sample
from selfdistill.training import TrainConfig, train, with_preset


@dataclass
class RunConfig:
    """The SSD loop: which model, which prompts, which decodings, how to train."""

    out: str = field(metadata={"help": "run directory"})
    model: str = field(metadata={"help": "base model (bundled name, .gguf, directory, hub id)"})
    train_problems: str = field(metadata={"help": "prompt pool for SSD data, e.g. leetcode:train"})
    eval_problems: str = field(metadata={"help": "held-out benchmark, e.g. leetcode:eval"})
    sample_decoding: DecodingConfig = field(metadata={"help": "T_train and truncation (n=1 in the paper)"})
    base_decoding: DecodingConfig = field(metadata={"help": "decoding of the base model's evaluation"})
    ssd_decoding: DecodingConfig = field(metadata={"help": "decoding of the SSD model's evaluation"})
    training: dict[str, Any] = field(metadata={"help": "TrainConfig keys (not model/data/out)"})
    train_limit: int | None = field(default=None, metadata={"help": "first N prompts of the pool"})
    eval_limit: int | None = field(default=None, metadata={"help": "first N benchmark problems"})
    sample_filter: str = field(default="none", metadata={"help": "none | paper | release"})
    batch_size: int = field(default=16, metadata={"help": "prompts per generation batch"})
    engine: EngineConfig = field(default_factory=EngineConfig, metadata={
        "help": "generation engine of every sampling stage (backend, dtype, server)"})
    sandbox: SandboxConfig = field(default_factory=SandboxConfig, metadata={"help": "judge limits"})
    bootstrap_samples: int = field(default=2000, metadata={"help": "paired bootstrap resamples"})
    bootstrap_seed: int = field(default=0, metadata={"help": "bootstrap seed"})
    stop_after: str | None = field(default=None, metadata={
        "help": "base_eval | sample: stop there (then launch train.yaml on many GPUs and rerun)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if self.stop_after not in (None, "base_eval", "sample"):
            raise ValueError("stop_after must be base_eval or sample")
        bad = {"model", "data", "out"} & set(self.training)
        if bad:
            raise ValueError(f"training must not set {sorted(bad)}: the pipeline does")
        train_config = self.train_config()  # validate the training keys now, not after sampling
        if train_config.method == "lora" and not train_config.merge_lora:
            raise ValueError("training.merge_lora must be true in a run: the SSD evaluation "
                             "loads the trained model, not an adapter")

    def train_config(self) -> TrainConfig:
        data = with_preset({**self.training, "model": self.model,
                            "data": str(Path(self.out) / "sample" / "samples.jsonl"),
                            "out": str(Path(self.out) / "train"), "progress": self.progress})
        return build(TrainConfig, data, where="training")


def _stage_settings(config: RunConfig) -> dict[Path, dict[str, Any]]:
    """For each stage, its record file and the settings it must have been run with."""
    root = Path(config.out)
    train_config = config.train_config()
    evals = {"problems": config.eval_problems, "limit": config.eval_limit,
             "engine": config.engine.output_settings()}
    return {
        root / "base_eval" / "results.json": {**evals, "model": config.model,
                                              "decoding": to_dict(config.base_decoding)},
        root / "sample" / "summary.json": {"model": config.model, "problems": config.train_problems,
                                           "limit": config.train_limit, "filter": config.sample_filter,
                                           "engine": config.engine.output_settings(),
                                           "decoding": to_dict(config.sample_decoding)},
        root / "train" / "train_config.json": {k: v for k, v in to_dict(train_config).items() if k != "progress"},
        root / "ssd_eval" / "results.json": {**evals, "model": str(root / "train" / "model"),
                                             "decoding": to_dict(config.ssd_decoding)},
    }


def check_finished_stages(config: RunConfig) -> None:
    """A rerun may skip a finished stage only if it was run with the same settings."""
    for record, expected in _stage_settings(config).items():
        if not record.exists():
            continue
        stored = json.loads(record.read_text())["config"] if record.name != "train_config.json" \
            else json.loads(record.read_text())
        changed = changed_settings(stored, expected)
        if changed:
            raise SelfdistillError(
                f"{record.parent} was made with other settings ({', '.join(changed)}); "
                "use a new run directory or remove that stage's directory")


def _eval(config: RunConfig, model: str, decoding: DecodingConfig, out: Path) -> dict[str, Any]:
    if (out / "results.json").exists():
        print(f"[skip] {out}/results.json exists")
    else:
        evaluate(EvalConfig(problems=config.eval_problems, out=str(out), model=model,
                            decoding=decoding, engine=config.engine,
                            batch_size=config.batch_size, limit=config.eval_limit,
                            sandbox=config.sandbox, progress=config.progress))
    results = json.loads((out / "results.json").read_text())
    print(format_table(results["metrics"], title=f"{out.name}: {model}"))
    return results


def run(config: RunConfig) -> Path:
    """The `run` stage's entry point; returns the path of report.md (or of the run
    directory when it stops early: stop_after)."""
    root = Path(config.out)
    check_finished_stages(config)
    root.mkdir(parents=True, exist_ok=True)
    resolved = {**to_dict(config), "training_resolved": to_dict(config.train_config())}
    atomic_write_text(root / "config.resolved.yaml", yaml.safe_dump(resolved, sort_keys=False))
    # the train stage's own config, for `accelerate launch -m selfdistill.cli train --config`
    atomic_write_text(root / "train.yaml", yaml.safe_dump(
        {k: v for k, v in to_dict(config.train_config()).items() if k != "progress"}, sort_keys=False))

    base = _eval(config, config.model, config.base_decoding, root / "base_eval")
    if config.stop_after == "base_eval":
        print("[stop] after base_eval (stop_after)")
        return root

    sample_dir = root / "sample"
    if (sample_dir / "summary.json").exists():
        print(f"[skip] {sample_dir}/summary.json exists")
    else:
        sample(SampleConfig(model=config.model, problems=config.train_problems, out=str(sample_dir),
                            decoding=config.sample_decoding, filter=config.sample_filter,
                            engine=config.engine, batch_size=config.batch_size,
                            limit=config.train_limit, progress=config.progress))
    data_summary = json.loads((sample_dir / "summary.json").read_text())["summary"]
    print(format_summary(data_summary))
    if config.stop_after == "sample":
        print(f"[stop] after sample (stop_after); train with e.g. `accelerate launch --config_file "
              f"configs/accelerate/ddp.yaml -m selfdistill.cli train --config {root / 'train.yaml'}`, "
              "then rerun this command")
        return root

    train_config = config.train_config()
    model_dir = Path(train_config.out) / "model"
    if (model_dir / "config.json").exists():
        print(f"[skip] {model_dir} exists")
    else:
        train(train_config)
    loss = json.loads((Path(train_config.out) / "loss.json").read_text())

    ssd = _eval(config, str(model_dir), config.ssd_decoding, root / "ssd_eval")
    report = write_report(root, config, base, ssd, data_summary, loss, provenance())
    print(f"report: {report}")
    return report
