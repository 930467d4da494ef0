"""`selfdistill run CONFIG.yaml [KEY=VALUE ...] [--plan] [--rebuild]`: the SSD protocol in
one run directory (layout.py).

    sample (SSD data) -> base_eval (the base model over its T_eval grid) -> train
    -> ssd_eval (the SSD model over its grid) -> compare (best against best, cross-fitted)
    -> analyze (lock/fork diagnostics on the compared responses) -> report

Before anything runs, every stage is classed by its stage record (records.py): **fresh**
(finished with exactly these settings and inputs, by content, its outputs untouched),
**stale** (a setting or an input changed, upstream included) or **missing** (never
finished; an interrupted stage resumes: generation continues its JSONL, judging its
verdicts, training its last checkpoint). A grid is fresh when every cell is; a T_eval
added to a grid is a missing cell and only it runs. Fresh stages are skipped, missing ones
run. The derived stages (compare, analyze, report: computed from the others' outputs
alone) are recomputed whenever they are stale. Any other stale stage is an error naming
it and what changed, unless `--rebuild` is given,
which removes it (a grid: its stale cells) and recomputes it and every stage after it: a
result is never assembled from stages that do not belong together. `--plan` prints the
classes and runs nothing. KEY=VALUE overrides any config field by its dotted key
(`training.max_steps=8`); values are YAML (`engine.enforce_eager=false`), applied before
validation and recorded. The base grid and the sampling share one engine (same model).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from selfdistill import records
from selfdistill.analyze import analyze, format_analysis
from selfdistill.analyze import stage_key as analyze_key
from selfdistill.config import to_dict
from selfdistill.errors import SelfdistillError
from selfdistill.files import atomic_write_text
from selfdistill.layout import DERIVED, GRIDS, STAGES, RunConfig
from selfdistill.report import ReportConfig, report, report_key
from selfdistill.sampling import format_summary, sample
from selfdistill.sampling import stage_key as sample_key
from selfdistill.sweep import (
    cell_states,
    cells_freshness,
    compare,
    compare_key,
    evaluate_cells,
    grid_summary,
)
from selfdistill.training import stage_key as train_key
from selfdistill.training import train

__all__ = ["RunConfig", "plan", "run"]


@dataclass
class StagePlan:
    name: str
    directory: Path
    state: records.Freshness
    inherited: bool = False  # not fresh because an upstream stage is not: checked again once it has run


def cell_dirs(config: RunConfig) -> dict[str, dict[float, Path]]:
    return {"base": {t: Path(c.out) for t, c in config.eval_cells("base_eval").items()},
            "ssd": {t: Path(c.out) for t, c in config.eval_cells("ssd_eval").items()}}


def compare_settings(config: RunConfig) -> dict[str, Any]:
    return {"selection": config.selection, "select_metric": config.select_metric,
            "bootstrap_samples": config.bootstrap_samples, "bootstrap_seed": config.bootstrap_seed,
            "responses": config.analysis_responses}


def _state(config: RunConfig, name: str) -> records.Freshness:
    """What stage `name` is now; it reads its upstream stages' outputs."""
    if name in GRIDS:
        return cells_freshness(config.eval_cells(name))
    keys = {"sample": lambda: sample_key(config.sample_config()),
            "train": lambda: train_key(config.train_config()),
            "compare": lambda: compare_key(cell_dirs(config), compare_settings(config)),
            "analyze": lambda: analyze_key(config.analyze_config()),
            "report": lambda: report_key(ReportConfig(run_dir=config.out))}
    return records.freshness(config.stage_dir(name), keys[name])


def _has_record(config: RunConfig, name: str) -> bool:
    if name in GRIDS:
        return any(records.read(Path(c.out)) is not None for c in config.eval_cells(name).values())
    return records.read(config.stage_dir(name)) is not None


def plan(config: RunConfig) -> list[StagePlan]:
    """Every stage of the run, fresh / stale / missing, with the reason. A stage whose
    upstream is not fresh cannot be called fresh: it is stale if it has a record, else
    missing, and `run` checks it again by content once its upstream has run."""
    out: list[StagePlan] = []
    states: dict[str, records.Freshness] = {}
    for name, upstream in STAGES.items():
        waiting = [u for u in upstream if not states[u].fresh]
        if waiting:
            u = waiting[0]
            has_record = _has_record(config, name)
            state = records.Freshness("stale" if has_record else "missing",
                                      [f"upstream {u} is {states[u].state}" + (
                                          "; checked again by content once it has run" if has_record else "")])
        else:
            state = _state(config, name)
        states[name] = state
        out.append(StagePlan(name, config.stage_dir(name), state, inherited=bool(waiting)))
    return out


def format_plan(stages: list[StagePlan]) -> str:
    return "\n".join(f"{s.name:<10} {s.state.state:<8} {s.state.why()}" for s in stages)


def _refuse(directory: Path, state: records.Freshness) -> None:
    raise SelfdistillError(f"{directory} is stale ({state.why()}); rerun with --rebuild to recompute it "
                           "and every stage after it, or use a new run directory")


def _remove_stale(config: RunConfig, name: str) -> None:
    if name not in GRIDS:
        shutil.rmtree(config.stage_dir(name))
        return
    cells = config.eval_cells(name)
    for t, state in cell_states(cells).items():
        if state.state == "stale":
            shutil.rmtree(cells[t].out)


def _write_configs(config: RunConfig, overrides: list[str]) -> None:
    root = Path(config.out)
    resolved = {**to_dict(config), "training_resolved": to_dict(config.train_config()),
                "analyze_resolved": to_dict(config.analyze_config()), "overrides": overrides}
    for k in ("plan", "rebuild"):
        resolved.pop(k)
    atomic_write_text(root / "config.resolved.yaml", yaml.safe_dump(resolved, sort_keys=False))
    # the train stage's own config, for `accelerate launch -m selfdistill.cli train --config`
    atomic_write_text(root / "train.yaml", yaml.safe_dump(
        {k: v for k, v in to_dict(config.train_config()).items() if k != "progress"}, sort_keys=False))


def _grid_line(name: str, results: dict[float, dict[str, Any]]) -> str:
    cells = ", ".join(f"T {t:g}: {100 * r['metrics']['pass@1']:.1f}%" for t, r in results.items())
    count = next(iter(results.values()))["metrics"]["count"]
    return f"[{name}] pass@1 over {count} problems: {cells}"


class _Engines:
    """The base model's engine, opened on first need and shared by its grid and sampling;
    closed before training needs the memory."""

    def __init__(self, config: RunConfig):
        self.config, self.backend = config, None

    def base(self) -> Any:
        if self.backend is None:
            from selfdistill.generation import make_backend

            self.backend = make_backend(self.config.model, self.config.engine)
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


def run(config: RunConfig, overrides: list[str] | None = None) -> Path:
    """The `run` stage's entry point; returns the path of report.md (or of the run
    directory when it stops early, stop_after, or only plans, plan)."""
    root = Path(config.out)
    slow = bf16_warning(config)
    if slow:
        print(slow, file=sys.stderr)
    if config.plan:
        print(format_plan(plan(config)))
        return root
    engines = _Engines(config)
    with records.lock(root):
        stale = [s for s in plan(config) if s.state.state == "stale" and not s.inherited and s.name not in DERIVED]
        if stale and not config.rebuild:  # known before anything runs: say so at once
            _refuse(stale[0].directory, stale[0].state)
        _write_configs(config, overrides or [])
        try:
            for name in STAGES:
                state = _state(config, name)  # upstream has run by now
                if state.state == "stale" and name in DERIVED:
                    print(f"[update] {name}: {state.why()}")
                elif state.state == "stale":
                    if not config.rebuild:
                        _refuse(config.stage_dir(name), state)
                    print(f"[rebuild] {name}: {state.why()}")
                    _remove_stale(config, name)
                if state.fresh:
                    print(f"[skip] {name}: fresh")
                else:
                    _run_stage(config, name, engines)
                if name == config.stop_after:
                    print(f"[stop] after {name} (stop_after)" + (
                        f"; train with e.g. `accelerate launch --config_file configs/accelerate/ddp.yaml -m "
                        f"selfdistill.cli train --config {root / 'train.yaml'}`, then rerun this command"
                        if name == "sample" else ""))
                    return root
        finally:
            engines.close()
    return root / "report" / "report.md"


def bf16_warning(config: RunConfig) -> str | None:
    """A warning line where the config states bf16 for the engine, training or analyze
    and this CPU only emulates it (an explicit choice is kept, but not silently slow)."""
    from selfdistill.generation import emulated_bf16

    train, analysis = config.train_config(), config.analyze_config()
    stated = [name for name, bf16 in (
        # an openai engine's dtype is the server's hardware, not this machine's
        ("engine.dtype", config.engine.backend != "openai" and config.engine.dtype == "bfloat16"),
        ("training.bf16", train.bf16 is True), ("training.load_dtype", train.load_dtype == "bfloat16"),
        ("analyze.dtype", analysis.dtype == "bfloat16")) if bf16]
    slow = emulated_bf16() if stated else None
    return f"warning: {', '.join(stated)} state bf16, but {slow}" if slow else None


def _run_stage(config: RunConfig, name: str, engines: _Engines) -> None:
    if name in GRIDS:
        opener = engines.base if name == "base_eval" else None
        print(_grid_line(name, evaluate_cells(config.eval_cells(name), name, opener)))
    elif name == "sample":
        print("[sample] " + format_summary(sample(config.sample_config(), backend=engines.base())))
    elif name == "train":
        engines.close()
        result = train(config.train_config())
        print(f"[train] {result['steps']} steps, loss {result['first_loss']} -> {result['last_loss']}")
    elif name == "compare":
        engines.close()
        title = (f"{config.eval_problems}{f' (first {config.eval_limit})' if config.eval_limit else ''}; base: "
                 f"{grid_summary(config.base_eval)}; SSD: {grid_summary(config.ssd_eval)}")
        record = compare(config.stage_dir("compare"), cell_dirs(config),
                         {"base": config.base_eval.n, "ssd": config.ssd_eval.n}, compare_settings(config),
                         title, {"base": config.model, "ssd": config.model_of("ssd_eval")})
        for line in record["headlines"]:
            print(f"[compare] {line}")
    elif name == "analyze":
        print("[analyze] " + format_analysis(analyze(config.analyze_config())).split("\n")[0])
    else:
        paths = report(ReportConfig(run_dir=config.out))
        print(f"[report] {paths['md']} and {paths['html']}")
