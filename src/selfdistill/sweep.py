"""`selfdistill sweep`: pass@k against T_eval for one or more models, and the paper's
best-tuned-baseline comparison.

    selfdistill sweep --models base=qwen2.5-coder-0.5b,ssd=runs/cpu-demo/train/model \
        --problems leetcode:eval --t-eval 0.0,0.4,0.7,1.0 --top-k 20 --top-p 0.8 --min-p 0 \
        --max-tokens 448 --n 4 --seed 0 --backend vllm --out runs/sweep

Every (model, T_eval) is one `eval` run in OUT/MODEL/T<t>/, reused when its stage record is
fresh (same settings, same model and problems by content, same judge limits; records.py)
and refused when it is stale, so a sweep can be interrupted,
rerun and extended with more temperatures. The truncation (top-k, top-p, min-p) and every
other decoding parameter are the same for all cells and stated in the output.

Best-tuned comparison: each model's best T_eval is chosen on the *selection* half of the
problems (even positions in the problem set's order) and the comparison is reported on the
other half, so "best" is not tuned on the problems it is reported on. With
`selection: all` both happen on every problem, and the output says so. The first model is
the reference; every other is compared with it: difference with a paired bootstrap 95%
interval, per-problem wins/losses and an exact sign test (metrics.py).

T_train x T_eval grid: name the models by their T_train (`--models 0.8=DIR,1.6=DIR`, e.g.
the `train/model` of one `run` directory per T_train, which caches its finished stages) and
the sweep draws the grid of the selection metric as a heatmap.

Writes sweep.json, sweep.png/svg (pass@k vs T_eval per model, overall and by difficulty)
and, for a T_train grid, grid.png/svg.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill import records
from selfdistill.config import provenance, to_dict
from selfdistill.errors import SelfdistillError
from selfdistill.evaluation import EvalConfig, evaluate
from selfdistill.files import atomic_write_text
from selfdistill.generation import DecodingConfig, EngineConfig
from selfdistill.judge import SandboxConfig
from selfdistill.metrics import compute_metrics, format_interval, ks_for, paired_comparison


@dataclass
class SweepConfig:
    """Models x T_eval on one problem set, with the truncation fixed and stated."""

    models: list[str] = field(metadata={"help": "NAME=MODEL entries; the first is the reference"})
    problems: str = field(metadata={"help": "problem spec, e.g. leetcode:eval"})
    out: str = field(metadata={"help": "output directory"})
    t_eval: list[float] = field(metadata={"help": "evaluation temperatures, e.g. 0.0,0.5,1.0"})
    top_k: int = field(metadata={"help": "top-k of every cell (0 = off)"})
    top_p: float = field(metadata={"help": "top-p of every cell (1.0 = off)"})
    min_p: float = field(metadata={"help": "min-p of every cell (0.0 = off)"})
    max_tokens: int = field(metadata={"help": "maximum new tokens per response"})
    n: int = field(metadata={"help": "responses per problem (pass@k for k <= n)"})
    seed: int = field(metadata={"help": "base seed of every cell"})
    select_metric: str = field(default="pass@1", metadata={"help": "metric that picks each model's best T_eval"})
    selection: str = field(default="split", metadata={
        "help": "split: pick best T on even-position problems, report on the rest | all: both on all (caveat)"})
    limit: int | None = field(default=None, metadata={"help": "only the first N problems"})
    batch_size: int = field(default=16, metadata={"help": "prompts per generation batch"})
    engine: EngineConfig = field(default_factory=EngineConfig, metadata={"help": "generation engine"})
    sandbox: SandboxConfig = field(default_factory=SandboxConfig, metadata={"help": "judge limits"})
    bootstrap_samples: int = field(default=2000, metadata={"help": "paired bootstrap resamples"})
    bootstrap_seed: int = field(default=0, metadata={"help": "bootstrap seed"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        named = self.named_models()
        if len(set(named)) != len(named):
            raise ValueError("model names must be unique")
        if not self.t_eval or len(set(self.t_eval)) != len(self.t_eval):
            raise ValueError("t_eval needs distinct temperatures")
        if self.selection not in ("split", "all"):
            raise ValueError("selection must be split or all")
        if not self.select_metric.startswith("pass@") or int(self.select_metric[5:]) > self.n:
            raise ValueError(f"select_metric {self.select_metric!r} needs pass@k with k <= n")
        self.decoding(0.0)  # validate the decoding parameters now

    def named_models(self) -> dict[str, str]:
        out = {}
        for entry in self.models:
            name, sep, model = entry.partition("=")
            if not sep or not name or not model:
                raise ValueError(f"models entry {entry!r}: expected NAME=MODEL")
            out[name] = model
        return out

    def decoding(self, t: float) -> DecodingConfig:
        return DecodingConfig(temperature=t, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
                              max_tokens=self.max_tokens, n=self.n, seed=self.seed)


def _cell(config: SweepConfig, name: str, model: str, t: float) -> tuple[EvalConfig, Path]:
    out = Path(config.out) / name / f"T{t:g}"
    return EvalConfig(problems=config.problems, out=str(out), model=model, decoding=config.decoding(t),
                      engine=config.engine, batch_size=config.batch_size, limit=config.limit,
                      sandbox=config.sandbox, progress=config.progress), out / "results.json"


def run_cells(config: SweepConfig) -> dict[str, dict[float, dict[str, Any]]]:
    """Every cell's results, evaluating the missing ones with one engine per model. A cell
    is reused only when its stage record is fresh (records.py); a stale one is refused."""
    from selfdistill.evaluation import load_eval_problems, stage_key
    from selfdistill.generation import make_backend

    results: dict[str, dict[float, dict[str, Any]]] = {}
    pset = None
    for name, model in config.named_models().items():
        results[name] = {}
        backend = None
        try:
            for t in config.t_eval:
                cell, path = _cell(config, name, model, t)
                pset = pset or load_eval_problems(cell)
                state = records.freshness(path.parent, stage_key(cell, pset))
                if state.state == "stale":
                    raise SelfdistillError(f"{path.parent} is stale: {state.why()}; use a new sweep "
                                           "directory or remove that cell")
                if not state.fresh:
                    if backend is None:
                        backend = make_backend(model, config.engine)
                    print(f"[sweep] {name} at T_eval {t:g}")
                    evaluate(cell, backend=backend)
                else:
                    print(f"[skip] {path.parent}: fresh")
                results[name][t] = json.loads(path.read_text())
        finally:
            if backend is not None:
                backend.close()
    return results


def _halves(task_ids: list[str], selection: str) -> tuple[set[str], set[str]]:
    if selection == "all":
        return set(task_ids), set(task_ids)
    return set(task_ids[0::2]), set(task_ids[1::2])


def summarise(config: SweepConfig, results: dict[str, dict[float, dict[str, Any]]]) -> dict[str, Any]:
    """Curves, each model's best T_eval on the selection half, and the comparisons on the
    report half; every model is scored on the problems all cells judged."""
    names = list(results)
    per_cell = {n: {t: {p["task_id"]: p for p in r["problems"]} for t, r in cells.items()}
                for n, cells in results.items()}
    first = next(iter(next(iter(results.values())).values()))
    order = [p["task_id"] for p in first["problems"]]
    common = [t for t in order if all(t in cell for cells in per_cell.values() for cell in cells.values())]
    if not common:
        raise SelfdistillError("the sweep's cells share no judged problems")
    select, report = _halves(common, config.selection)
    if config.selection == "split" and len(common) < 2:
        raise SelfdistillError("selection split needs at least 2 problems; use selection all")

    def records(name: str, t: float, keep: set[str]) -> list[dict[str, Any]]:
        return [per_cell[name][t][task] for task in common if task in keep]

    curves = {n: {f"{t:g}": compute_metrics(records(n, t, set(common))) for t in config.t_eval} for n in names}
    best = {}
    for n in names:
        scores = {t: compute_metrics(records(n, t, select))[config.select_metric] for t in config.t_eval}
        t_best = max(config.t_eval, key=lambda t: (scores[t], -t))  # ties: the colder temperature
        best[n] = {"t_eval": t_best, "selection_score": scores[t_best],
                   "report": compute_metrics(records(n, t_best, report))}
    ks = ks_for(config.n)
    comparisons = []
    ref = names[0]
    for other in names[1:]:
        for k in ks:
            row = paired_comparison(records(ref, best[ref]["t_eval"], report),
                                    records(other, best[other]["t_eval"], report), k,
                                    config.bootstrap_samples, config.bootstrap_seed)
            comparisons.append({"reference": ref, "model": other, "reference_t_eval": best[ref]["t_eval"],
                                "model_t_eval": best[other]["t_eval"], **row})
    caveat = ("best T_eval chosen on the even-position half of the problems, comparison reported on "
              "the other half" if config.selection == "split" else
              "best T_eval chosen and reported on the same problems: the comparison is tuned on its own "
              "test set and optimistic for every model")
    return {"problems": len(common), "selection_problems": len(select), "report_problems": len(report),
            "selection_caveat": caveat, "curves": curves, "best": best, "comparisons": comparisons}


def sweep(config: SweepConfig) -> dict[str, Any]:
    """The `sweep` stage's entry point: evaluates missing cells, writes sweep.json and plots."""
    out = Path(config.out)
    with records.lock(out):
        results = run_cells(config)
        record = {"stage": "sweep", "config": to_dict(config), "models": config.named_models(),
                  **summarise(config, results), "provenance": provenance()}
        settings = {k: v for k, v in to_dict(config).items() if k not in ("out", "progress", "engine", "sandbox")}
        cells = {f"{n}/T{t:g}": records.record_digest(out / n / f"T{t:g}") for n in results for t in results[n]}
        with records.open_stage(out, records.StageKey("sweep", settings, {"cells": cells}),
                                derived=True) as stage:
            atomic_write_text(out / "sweep.json", json.dumps(record, indent=1))
            plot(record, out / "sweep")
            if _grid_names(record["models"]):
                plot_grid(record, out / "grid")
            stage.finish(["sweep.json"], {"provenance": record["provenance"]})
    return record


def _grid_names(models: dict[str, str]) -> list[float] | None:
    try:
        return [float(n) for n in models] if len(models) > 1 else None
    except ValueError:
        return None


def plot(record: dict[str, Any], stem: Path) -> list[Path]:
    from selfdistill.plots import pyplot, save

    plt = pyplot()
    names = list(record["curves"])
    some = next(iter(record["curves"][names[0]].values()))
    metrics = [k for k in some if k.startswith("pass@")]
    by_diff = some.get("by_difficulty", {})
    # one difficulty holding every problem (HumanEval has none) would repeat "overall"
    subsets = ["overall"] + (sorted(by_diff) if len(by_diff) > 1 else [])
    fig, axes = plt.subplots(len(metrics), len(subsets), figsize=(3.6 * len(subsets), 3 * len(metrics)),
                             squeeze=False)
    for i, metric in enumerate(metrics):
        for j, subset in enumerate(subsets):
            ax = axes[i][j]
            for name in names:
                ts = [float(t) for t in record["curves"][name]]
                cells = record["curves"][name].values()
                ys = [100 * (c if subset == "overall" else c["by_difficulty"].get(subset, {})).get(metric, float("nan"))
                      for c in cells]
                ax.plot(ts, ys, marker="o", label=name)
            ax.set_title(f"{metric}, {subset}", fontsize=10)
            ax.set_xlabel("T_eval")
            ax.set_ylabel("%")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    c = record["config"]
    fig.suptitle(f"{c['problems']}: top-k {c['top_k'] or 'off'}, top-p {c['top_p']}, min-p {c['min_p'] or 'off'}, "
                 f"n={c['n']}, max_tokens {c['max_tokens']}", fontsize=10)
    fig.tight_layout()
    return save(fig, stem)


def plot_grid(record: dict[str, Any], stem: Path) -> list[Path]:
    from selfdistill.plots import pyplot, save

    plt = pyplot()
    metric = record["config"]["select_metric"]
    rows = sorted(record["curves"], key=float)
    temps = list(record["curves"][rows[0]])
    values = [[100 * record["curves"][r][t][metric] for t in temps] for r in rows]
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(temps), 1 + 0.5 * len(rows)))
    im = ax.imshow(values, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(temps)), temps)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("T_eval")
    ax.set_ylabel("T_train")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="white", fontsize=8)
    fig.colorbar(im, label=f"{metric} (%)")
    fig.tight_layout()
    return save(fig, stem)


def format_sweep(record: dict[str, Any]) -> str:
    metric = record["config"]["select_metric"]
    names = list(record["curves"])
    temps = list(record["curves"][names[0]])
    lines = [f"{metric} (%) over {record['problems']} problems",
             f"{'model':<12} " + " ".join(f"{'T=' + t:>7}" for t in temps)]
    for n in names:
        lines.append(f"{n:<12} " + " ".join(f"{100 * record['curves'][n][t][metric]:>7.1f}" for t in temps))
    lines.append(f"best T_eval ({record['selection_caveat']}):")
    for n, b in record["best"].items():
        lines.append(f"  {n}: T_eval {b['t_eval']:g} ({metric} {100 * b['selection_score']:.1f}% on selection, "
                     f"{100 * b['report'][metric]:.1f}% on {record['report_problems']} reported problems)")
    for c in record["comparisons"]:
        lines.append(f"  {c['model']} (T {c['model_t_eval']:g}) - {c['reference']} (T {c['reference_t_eval']:g}), "
                     f"pass@{c['k']}: {format_interval(c)}; wins/losses {c['wins']}/{c['losses']}, "
                     f"sign test p={c['sign_test_p']:.3g}")
    return "\n".join(lines)
