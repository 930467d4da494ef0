"""`selfdistill run CONFIG.yaml [KEY=VALUE ...] [--plan] [--rebuild]`: the whole SSD loop in
one run directory (layout.py).

    base eval -> sample (SSD data) -> train -> SSD eval -> report

Before anything runs, every stage is classed by its stage record (records.py): **fresh**
(finished with exactly these settings and inputs, by content, its outputs untouched),
**stale** (a setting or an input changed, upstream included) or **missing** (never
finished; an interrupted stage resumes: generation continues its JSONL, judging its
verdicts, training its last checkpoint). Fresh stages are skipped, missing ones run. A
stale stage is an error naming it and what changed, unless `--rebuild` is given, which
removes it and every stage after it and recomputes them: a result is never assembled
from stages that do not belong together. `--plan` prints the classes and runs nothing.
KEY=VALUE overrides any config field by its dotted key (`training.max_steps=8`); values
are YAML (`engine.enforce_eager=false`), applied before validation and recorded.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from selfdistill import records
from selfdistill.config import to_dict
from selfdistill.errors import SelfdistillError
from selfdistill.evaluation import evaluate, format_table
from selfdistill.evaluation import stage_key as eval_key
from selfdistill.files import atomic_write_text
from selfdistill.layout import STAGES, RunConfig
from selfdistill.report import ReportConfig, report, report_key
from selfdistill.sampling import format_summary, sample
from selfdistill.sampling import stage_key as sample_key
from selfdistill.training import stage_key as train_key
from selfdistill.training import train

__all__ = ["RunConfig", "plan", "run"]


@dataclass
class StagePlan:
    name: str
    directory: Path
    state: records.Freshness
    inherited: bool = False  # not fresh because an upstream stage is not: checked again once it has run


def _key(config: RunConfig, name: str) -> records.StageKey:
    """What stage `name` would be run with now; it reads its upstream stages' outputs."""
    if name in ("base_eval", "ssd_eval"):
        return eval_key(config.eval_config(name))
    if name == "sample":
        return sample_key(config.sample_config())
    if name == "train":
        return train_key(config.train_config())
    return report_key(_report_config(config))


def _report_config(config: RunConfig) -> ReportConfig:
    return ReportConfig(run_dir=config.out)


def plan(config: RunConfig) -> list[StagePlan]:
    """Every stage of the run, fresh / stale / missing, with the reason. A stage whose
    upstream is not fresh cannot be called fresh: it is stale if it has a record, else
    missing, and `run` checks it again by content once its upstream has run."""
    out: list[StagePlan] = []
    states: dict[str, records.Freshness] = {}
    for name, upstream in STAGES.items():
        directory = config.stage_dir(name)
        waiting = [u for u in upstream if not states[u].fresh]
        if waiting:
            u = waiting[0]
            has_record = records.read(directory) is not None
            state = records.Freshness("stale" if has_record else "missing",
                                      [f"upstream {u} is {states[u].state}" + (
                                          "; checked again by content once it has run" if has_record else "")])
        else:
            state = records.freshness(directory, _key(config, name))
        states[name] = state
        out.append(StagePlan(name, directory, state, inherited=bool(waiting)))
    return out


def format_plan(stages: list[StagePlan]) -> str:
    return "\n".join(f"{s.name:<10} {s.state.state:<8} {s.state.why()}" for s in stages)


def _refuse(directory: Path, state: records.Freshness) -> None:
    raise SelfdistillError(f"{directory} is stale ({state.why()}); rerun with --rebuild to recompute it "
                           "and every stage after it, or use a new run directory")


def _eval(config: RunConfig, stage: str) -> dict[str, Any]:
    cfg = config.eval_config(stage)
    evaluate(cfg)
    results = json.loads((Path(cfg.out) / "results.json").read_text())
    print(format_table(results["metrics"], title=f"{stage}: {cfg.model}"))
    return results


def _write_configs(config: RunConfig, overrides: list[str]) -> None:
    root = Path(config.out)
    resolved = {**to_dict(config), "training_resolved": to_dict(config.train_config()), "overrides": overrides}
    for k in ("plan", "rebuild"):
        resolved.pop(k)
    atomic_write_text(root / "config.resolved.yaml", yaml.safe_dump(resolved, sort_keys=False))
    # the train stage's own config, for `accelerate launch -m selfdistill.cli train --config`
    atomic_write_text(root / "train.yaml", yaml.safe_dump(
        {k: v for k, v in to_dict(config.train_config()).items() if k != "progress"}, sort_keys=False))


def run(config: RunConfig, overrides: list[str] | None = None) -> Path:
    """The `run` stage's entry point; returns the path of report.md (or of the run
    directory when it stops early, stop_after, or only plans, plan)."""
    root = Path(config.out)
    if config.plan:
        print(format_plan(plan(config)))
        return root
    with records.lock(root):
        stale = [s for s in plan(config) if s.state.state == "stale" and not s.inherited]
        if stale and not config.rebuild:  # known before anything runs: say so at once
            _refuse(stale[0].directory, stale[0].state)
        _write_configs(config, overrides or [])
        for name in STAGES:
            directory = config.stage_dir(name)
            state = records.freshness(directory, _key(config, name))  # upstream has run by now
            if state.state == "stale":
                if not config.rebuild:
                    _refuse(directory, state)
                print(f"[rebuild] {name}: {state.why()}")
                shutil.rmtree(directory)
            if state.fresh:
                print(f"[skip] {name}: fresh")
            if name in ("base_eval", "ssd_eval"):
                if not state.fresh:
                    _eval(config, name)
                if name == "base_eval" and config.stop_after == "base_eval":
                    print("[stop] after base_eval (stop_after)")
                    return root
            elif name == "sample":
                if not state.fresh:
                    print(format_summary(sample(config.sample_config())))
                if config.stop_after == "sample":
                    print(f"[stop] after sample (stop_after); train with e.g. `accelerate launch --config_file "
                          f"configs/accelerate/ddp.yaml -m selfdistill.cli train --config {root / 'train.yaml'}`, "
                          "then rerun this command")
                    return root
            elif name == "train" and not state.fresh:
                train(config.train_config())
            elif name == "report" and not state.fresh:
                paths = report(_report_config(config))
                print(f"report: {paths['md']}")
    return root / "report.md"
