"""The run directory: the `run` config and where each stage of it lives. Both `pipeline`
(which runs the stages) and `report` (which renders them) import this, and nothing here
imports either.

    RUN/config.resolved.yaml   every setting, defaults and overrides included
    RUN/train.yaml             the train stage's config (to launch it on many GPUs: docs/training.md)
    RUN/sample/                the SSD data
    RUN/base_eval/T<t>/        the base model's grid: one eval stage per T_eval
    RUN/train/                 the SSD model
    RUN/ssd_eval/T<t>/         the SSD model's grid
    RUN/compare/               best against best (compare.json, figures, the responses analyze reads)
    RUN/analyze/               lock/fork diagnostics of both models on those responses
    RUN/report/                report.json, and from it report.md and report.html
Each stage directory holds its outputs and its stage record (records.py), written last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.analyze import AnalyzeConfig
from selfdistill.config import build
from selfdistill.evaluation import EvalConfig
from selfdistill.generation import DecodingConfig, EngineConfig
from selfdistill.judge import SandboxConfig
from selfdistill.sampling import SampleConfig
from selfdistill.sweep import EvalGrid, cell_configs, check_selection
from selfdistill.training import TrainConfig, with_preset

# stage -> the stages whose outputs it reads
# (in the order they run: the SSD data first, so that `stop_after: sample` hands a long
# training job its data before hours of base evaluation)
STAGES: dict[str, tuple[str, ...]] = {
    "sample": (),
    "base_eval": (),
    "train": ("sample",),
    "ssd_eval": ("train",),
    "compare": ("base_eval", "ssd_eval"),
    "analyze": ("compare", "train"),
    "report": ("base_eval", "sample", "train", "ssd_eval", "compare", "analyze"),
}
GRIDS = ("base_eval", "ssd_eval")
# computed from the other stages' outputs alone: recomputed, never refused, when stale
DERIVED = ("compare", "analyze", "report")


@dataclass
class RunConfig:
    """The SSD protocol: which model, which prompts, how to sample and train, and the
    T_eval grid on which each model is evaluated before they are compared best to best."""

    out: str = field(metadata={"help": "run directory"})
    model: str = field(metadata={"help": "base model (bundled name, .gguf, directory, hub id)"})
    train_problems: str = field(metadata={"help": "prompt pool for SSD data, e.g. leetcode:train"})
    eval_problems: str = field(metadata={"help": "held-out benchmark, e.g. humaneval[:24]"})
    sample_decoding: DecodingConfig = field(metadata={"help": "T_train and truncation (n=1 in the paper)"})
    base_eval: EvalGrid = field(metadata={"help": "the base model's T_eval grid, truncation, max_tokens, n, seed"})
    ssd_eval: EvalGrid = field(metadata={"help": "the SSD model's T_eval grid, truncation, max_tokens, n, seed"})
    training: dict[str, Any] = field(metadata={"help": "TrainConfig keys (not model/data/out)"})
    train_limit: int | None = field(default=None, metadata={"help": "first N prompts of the pool"})
    eval_limit: int | None = field(default=None, metadata={"help": "first N benchmark problems"})
    sample_filter: str = field(default="none", metadata={"help": "none | paper | release"})
    batch_size: int = field(default=16, metadata={"help": "prompts per generation batch"})
    engine: EngineConfig = field(default_factory=EngineConfig, metadata={
        "help": "generation engine of every sampling stage (backend, dtype, server)"})
    sandbox: SandboxConfig = field(default_factory=SandboxConfig, metadata={"help": "judge limits"})
    selection: str = field(default="crossfit", metadata={
        "help": "how each model's best T_eval is picked: crossfit | split | all (sweep.py)"})
    select_metric: str = field(default="pass@1", metadata={"help": "metric that picks the best T_eval"})
    bootstrap_samples: int = field(default=2000, metadata={"help": "bootstrap resamples (comparison and analyze)"})
    bootstrap_seed: int = field(default=0, metadata={"help": "bootstrap seed"})
    analysis_responses: int = field(default=32, metadata={
        "help": "responses per model, from the cells the comparison scored, that analyze teacher-forces"})
    analyze: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "AnalyzeConfig keys (not samples/base/ssd/out/truncation: the run sets them)"})
    note: str | None = field(default=None, metadata={
        "help": "a sentence the report shows first (what this run can and cannot show)"})
    stop_after: str | None = field(default=None, metadata={
        "help": "sample | base_eval: stop there (then launch train.yaml on many GPUs and rerun)"})
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
        check_selection(self.selection, self.select_metric, min(self.base_eval.n, self.ssd_eval.n))
        if self.analysis_responses <= 0:
            raise ValueError("analysis_responses must be positive")
        bad = {"samples", "base", "ssd", "out", "truncation"} & set(self.analyze)
        if bad:
            raise ValueError(f"analyze must not set {sorted(bad)}: the pipeline does")
        self.analyze_config()

    def train_config(self) -> TrainConfig:
        data = with_preset({**self.training, "model": self.model,
                            "data": str(self.stage_dir("sample") / "samples.jsonl"),
                            "out": str(self.stage_dir("train")), "progress": self.progress})
        return build(TrainConfig, data, where="training")

    def analyze_config(self) -> AnalyzeConfig:
        """Both models teacher-forced on the compared responses, under the SSD grid's truncation."""
        t = self.ssd_eval.truncation()
        data = {"bootstrap_samples": self.bootstrap_samples, "bootstrap_seed": self.bootstrap_seed,
                "dtype": "auto", **self.analyze,
                "samples": str(self.stage_dir("compare") / "responses.jsonl"), "base": self.model,
                "ssd": str(self.stage_dir("train") / "model"), "out": str(self.stage_dir("analyze")),
                "truncation": {"top_k": t.top_k, "top_p": t.top_p, "min_p": t.min_p}, "progress": self.progress}
        return build(AnalyzeConfig, data, where="analyze")

    def stage_dir(self, stage: str) -> Path:
        return Path(self.out) / stage

    def model_of(self, grid: str) -> str:
        return self.model if grid == "base_eval" else str(self.stage_dir("train") / "model")

    def grid(self, name: str) -> EvalGrid:
        return self.base_eval if name == "base_eval" else self.ssd_eval

    def eval_cells(self, name: str) -> dict[float, EvalConfig]:
        """The eval stage of every cell of the base or SSD grid."""
        return cell_configs(self.grid(name), self.model_of(name), self.eval_problems, self.stage_dir(name),
                            engine=self.engine, batch_size=self.batch_size, limit=self.eval_limit,
                            sandbox=self.sandbox, progress=self.progress)

    def sample_config(self) -> SampleConfig:
        return SampleConfig(model=self.model, problems=self.train_problems, out=str(self.stage_dir("sample")),
                            decoding=self.sample_decoding, filter=self.sample_filter, engine=self.engine,
                            batch_size=self.batch_size, limit=self.train_limit, progress=self.progress)
