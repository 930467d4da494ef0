"""The run directory: the `run` config and where each stage of it lives. Both `pipeline`
(which runs the stages) and `report` (which renders them) import this, and nothing here
imports either.

    RUN/config.resolved.yaml   every setting, defaults and overrides included
    RUN/train.yaml             the train stage's config (to launch it on many GPUs: docs/training.md)
    RUN/base_eval/  RUN/sample/  RUN/train/  RUN/ssd_eval/  RUN/report/    one directory per stage
                               (report/: report.json, and from it report.md and report.html)
Each stage directory holds its outputs and its stage record (records.py), written last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.config import build
from selfdistill.evaluation import EvalConfig
from selfdistill.generation import DecodingConfig, EngineConfig
from selfdistill.judge import SandboxConfig
from selfdistill.sampling import SampleConfig
from selfdistill.training import TrainConfig, with_preset

# stage -> the stages whose outputs it reads
STAGES: dict[str, tuple[str, ...]] = {
    "base_eval": (),
    "sample": (),
    "train": ("sample",),
    "ssd_eval": ("train",),
    "report": ("base_eval", "sample", "train", "ssd_eval"),
}


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
    plan: bool = field(default=False, metadata={
        "help": "print every stage as fresh / stale / missing with the reason, and run nothing"})
    rebuild: bool = field(default=False, metadata={
        "help": "recompute every stale stage and the stages after it (otherwise a stale stage is an error)"})

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
                            "data": str(self.stage_dir("sample") / "samples.jsonl"),
                            "out": str(self.stage_dir("train")), "progress": self.progress})
        return build(TrainConfig, data, where="training")

    def stage_dir(self, stage: str) -> Path:
        return Path(self.out) / stage

    def eval_config(self, stage: str) -> EvalConfig:
        """The base or SSD evaluation of this run."""
        model, decoding = ((self.model, self.base_decoding) if stage == "base_eval" else
                           (str(self.stage_dir("train") / "model"), self.ssd_decoding))
        return EvalConfig(problems=self.eval_problems, out=str(self.stage_dir(stage)), model=model,
                          decoding=decoding, engine=self.engine, batch_size=self.batch_size,
                          limit=self.eval_limit, sandbox=self.sandbox, progress=self.progress)

    def sample_config(self) -> SampleConfig:
        return SampleConfig(model=self.model, problems=self.train_problems, out=str(self.stage_dir("sample")),
                            decoding=self.sample_decoding, filter=self.sample_filter, engine=self.engine,
                            batch_size=self.batch_size, limit=self.train_limit, progress=self.progress)
