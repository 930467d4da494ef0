"""`selfdistill sweep`: pass@k against T_eval for one or more models, and the paper's
comparison, each model at its own best T_eval, without the winner's curse.

    selfdistill sweep --models base=qwen2.5-coder-0.5b,ssd=runs/cpu-demo/train/model \
        --problems humaneval --limit 40 --t-eval 0,0.6,1.0 --top-k 20 --top-p 0.8 --min-p 0 \
        --max-tokens 384 --n 4 --seed 0 --backend vllm --out runs/sweep

The grid (`EvalGrid`): T_eval values, one truncation (top-k, top-p, min-p) for every cell,
max tokens, n responses per problem and the seed. Every (model, T_eval) is one `eval` stage
in OUT/MODEL/T<t>/, reused when its stage record is fresh (records.py) and refused when it
is stale, so a sweep can be interrupted, rerun and extended. A greedy cell (T 0) is decoded
once per problem, not n times: greedy decoding is deterministic, so its one response
counts as n identical ones (pass@k of a greedy problem is 1 if it passed, else 0).

Best against best (`summarise`), `selection`:
- crossfit (default): split the problems by position into halves A (even) and B (odd);
  pick each model's best T_eval on A and score it on B, pick on B and score on A; every
  problem is scored once, at a temperature chosen without it. No problem is thrown away
  and no score is tuned on itself.
- split: pick on A, report on B only (half the problems).
- all: pick and report on every problem; optimistic for every model, and it says so.
The first model is the reference; each other model is compared with it on the problems
both scored: pass@k for every k <= n (pass@1, pass@5 when n >= 5, ...), overall and by
difficulty, with a paired bootstrap 95% interval, per-problem wins/losses and the exact
sign test (metrics.py). The difference at every T_eval both grids share is reported too,
as a curve with intervals, and the headline is one sentence (`headline`).

T_train x T_eval grid: name the models by their T_train (`--models 0.8=DIR,1.6=DIR`) and
the sweep draws the grid of the selection metric as a heatmap.

Writes sweep.json, sweep.png/svg (pass@k vs T_eval per model, overall and by difficulty),
difference.png/svg (the difference at each fixed T_eval) and, for a T_train grid, grid.png/svg.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill import records
from selfdistill.config import provenance, to_dict
from selfdistill.errors import SelfdistillError
from selfdistill.evaluation import EvalConfig, evaluate
from selfdistill.files import atomic_write_text
from selfdistill.generation import DecodingConfig, EngineConfig, Truncation
from selfdistill.judge import SandboxConfig
from selfdistill.metrics import compute_metrics, format_interval, ks_for, paired_comparison, subsets

SELECTIONS = ("crossfit", "split", "all")


@dataclass
class EvalGrid(Truncation):
    """One model's evaluation grid: T_eval values under one truncation, n responses each."""

    t_eval: list[float] = field(metadata={"help": "evaluation temperatures, e.g. 0.0,0.6,1.0 (0 = greedy, once)"})
    max_tokens: int = field(metadata={"help": "maximum new tokens per response"})
    n: int = field(metadata={"help": "responses per problem at each sampled T_eval (pass@k for k <= n)"})
    seed: int = field(metadata={"help": "base seed of every cell"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.t_eval or len(set(self.t_eval)) != len(self.t_eval):
            raise ValueError("t_eval needs distinct temperatures")
        for t in self.t_eval:
            self.decoding(t)  # each cell's decoding is valid

    def decoding(self, t: float) -> DecodingConfig:
        """The decoding of the cell at T_eval t: greedy cells decode once."""
        return DecodingConfig(temperature=t, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
                              max_tokens=self.max_tokens, n=1 if t == 0 else self.n, seed=self.seed)


def grid_summary(grid: EvalGrid) -> str:
    return f"{grid.describe()}, n={grid.n} (greedy once), max_tokens {grid.max_tokens}"


def grid_title(problems: str, grid: EvalGrid) -> str:
    return f"{problems}: {grid_summary(grid)}"


def cell_dir(out: Path, t: float) -> Path:
    return out / f"T{t:g}"


def cell_configs(grid: EvalGrid, model: str, problems: str, out: Path, *, engine: EngineConfig,
                 batch_size: int, limit: int | None, sandbox: SandboxConfig, progress: bool) -> dict[float, EvalConfig]:
    """The eval stage of every cell of one model's grid, in grid order."""
    return {t: EvalConfig(problems=problems, out=str(cell_dir(out, t)), model=model, decoding=grid.decoding(t),
                          engine=engine, batch_size=batch_size, limit=limit, sandbox=sandbox, progress=progress)
            for t in grid.t_eval}


def cell_states(cells: dict[float, EvalConfig]) -> dict[float, records.Freshness]:
    """Each cell's state; the problems are loaded only where a record needs comparing."""
    from selfdistill.evaluation import load_eval_problems, stage_key

    loaded: list[Any] = []

    def key(cell: EvalConfig) -> records.StageKey:
        if not loaded:
            loaded.append(load_eval_problems(cell))
        return stage_key(cell, loaded[0])

    return {t: records.freshness(Path(c.out), lambda c=c: key(c)) for t, c in cells.items()}


def cells_freshness(cells: dict[float, EvalConfig]) -> records.Freshness:
    """One state for a grid: stale if any cell is, else missing if any is, else fresh."""
    states = cell_states(cells)
    for wanted in ("stale", "missing"):
        bad = {t: s for t, s in states.items() if s.state == wanted}
        if bad:
            return records.Freshness(wanted, [f"T{t:g}: {s.why()}" for t, s in bad.items()])
    return records.Freshness("fresh", [])


def evaluate_cells(cells: dict[float, EvalConfig], label: str,
                   open_backend: Callable[[], Any] | None = None) -> dict[float, dict[str, Any]]:
    """Every cell's results.json, evaluating the cells that are not fresh with one engine
    (opened on first need by `open_backend`, default make_backend, and closed here unless
    the caller gave it). A stale cell is refused."""
    from selfdistill.evaluation import load_eval_problems, stage_key
    from selfdistill.generation import make_backend

    first = next(iter(cells.values()))
    pset = load_eval_problems(first)
    backend, owned = None, open_backend is None
    try:
        out = {}
        for t, cell in cells.items():
            state = records.freshness(Path(cell.out), stage_key(cell, pset))
            if state.state == "stale":
                raise SelfdistillError(f"{cell.out} is stale: {state.why()}; use a new directory or remove that cell")
            if not state.fresh:
                if backend is None:
                    backend = open_backend() if open_backend else make_backend(first.model, first.engine)
                print(f"[{label}] T_eval {t:g}: {cell.decoding.n} response(s) per problem")
                evaluate(cell, backend=backend)
            else:
                print(f"[skip] {cell.out}: fresh")
            out[t] = json.loads((Path(cell.out) / "results.json").read_text())
        return out
    finally:
        if backend is not None and owned:
            backend.close()


@dataclass
class SweepConfig(EvalGrid):
    """Models x T_eval on one problem set, with the truncation fixed and stated."""

    models: list[str] = field(metadata={"help": "NAME=MODEL entries; the first is the reference"})
    problems: str = field(metadata={"help": "problem spec, e.g. humaneval"})
    out: str = field(metadata={"help": "output directory"})
    select_metric: str = field(default="pass@1", metadata={"help": "metric that picks each model's best T_eval"})
    selection: str = field(default="crossfit", metadata={
        "help": "crossfit: pick on one half, score the other, both ways | split: pick on even-position problems, "
                "report the rest | all: pick and report on all (optimistic)"})
    limit: int | None = field(default=None, metadata={"help": "only the first N problems"})
    batch_size: int = field(default=16, metadata={"help": "prompts per generation batch"})
    engine: EngineConfig = field(default_factory=EngineConfig, metadata={"help": "generation engine"})
    sandbox: SandboxConfig = field(default_factory=SandboxConfig, metadata={"help": "judge limits"})
    bootstrap_samples: int = field(default=2000, metadata={"help": "paired bootstrap resamples"})
    bootstrap_seed: int = field(default=0, metadata={"help": "bootstrap seed"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        super().__post_init__()
        named = self.named_models()
        if len(set(named)) != len(named):
            raise ValueError("model names must be unique")
        check_selection(self.selection, self.select_metric, self.n)

    def named_models(self) -> dict[str, str]:
        out = {}
        for entry in self.models:
            name, sep, model = entry.partition("=")
            if not sep or not name or not model:
                raise ValueError(f"models entry {entry!r}: expected NAME=MODEL")
            out[name] = model
        return out


def check_selection(selection: str, select_metric: str, n: int) -> None:
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}")
    if not select_metric.startswith("pass@") or not select_metric[5:].isdigit() or int(select_metric[5:]) > n:
        raise ValueError(f"select_metric {select_metric!r} needs pass@k with k <= n")


def _as_n(problem: dict[str, Any], n: int) -> dict[str, Any]:
    """A greedy cell's record counted as n identical responses."""
    return {**problem, "n": n * problem["n"], "correct": n * problem["correct"]}


def _folds(common: list[str], selection: str) -> list[tuple[str, list[str], list[str]]]:
    """(name, problems that pick T_eval, problems scored at it)."""
    a, b = common[0::2], common[1::2]
    if selection == "all":
        return [("all", common, common)]
    if selection == "split":
        return [("A", a, b)]
    return [("A", a, b), ("B", b, a)]


CAVEATS = {
    "crossfit": "cross-fitted: each model's best T_eval picked on one half of the problems (even positions) and "
                "scored on the other half, then the halves swapped; every problem is scored once, at a "
                "temperature chosen without it",
    "split": "best T_eval picked on the even-position half of the problems, comparison reported on the other half",
    "all": "best T_eval picked and reported on the same problems: the comparison is tuned on its own test set "
           "and optimistic for every model",
}


def shared_problems(cells: dict[str, dict[float, dict[str, Any]]], n: dict[str, int],
                    ) -> tuple[dict[str, dict[float, dict[str, dict[str, Any]]]], list[str]]:
    """Every cell's per-problem records by task_id (a greedy cell of one response counted
    as n identical ones) and the problems every cell judged, in the first cell's order."""
    per = {m: {t: {p["task_id"]: (_as_n(p, n[m]) if t == 0 and p["n"] == 1 else p) for p in r["problems"]}
               for t, r in cs.items()} for m, cs in cells.items()}
    first = next(iter(next(iter(cells.values())).values()))
    common = [p["task_id"] for p in first["problems"]
              if all(p["task_id"] in cell for cs in per.values() for cell in cs.values())]
    if not common:
        raise SelfdistillError("the cells share no judged problems")
    return per, common


def curves_over(per: dict[str, dict[float, dict[str, dict[str, Any]]]], common: list[str],
                ) -> dict[str, dict[str, dict[str, Any]]]:
    """pass@k of every model at every T_eval over the same problems."""
    return {m: {f"{t:g}": compute_metrics([cells[t][x] for x in common]) for t in cells} for m, cells in per.items()}


def summarise(cells: dict[str, dict[float, dict[str, Any]]], n: dict[str, int], selection: str,
              select_metric: str, bootstrap_samples: int, bootstrap_seed: int) -> dict[str, Any]:
    """Curves, each model's best T_eval per fold, the best-against-best comparisons and the
    difference at every shared T_eval; every model is scored on the problems all cells
    judged. `cells[model][t]` is a results.json; `n[model]` the grid's n (greedy cells
    count as n identical responses)."""
    names = list(cells)
    per, common = shared_problems(cells, n)
    if selection != "all" and len(common) < 2:
        raise SelfdistillError(f"selection {selection} needs at least 2 problems; use selection all")
    ks = ks_for(min(n.values()))

    def recs(m: str, t: float, tasks: list[str]) -> list[dict[str, Any]]:
        return [per[m][t][x] for x in tasks]

    curves = curves_over(per, common)
    best, chosen = {}, {m: {} for m in names}
    for m in names:
        folds = []
        for fold, sel, rep in _folds(common, selection):
            scores = {t: compute_metrics(recs(m, t, sel))[select_metric] for t in per[m]}
            t_best = max(scores, key=lambda t: (scores[t], -t))  # ties: the colder temperature
            folds.append({"fold": fold, "t_eval": t_best, "selection_problems": len(sel),
                          "selection_score": scores[t_best], "scored_problems": len(rep)})
            chosen[m].update({x: t_best for x in rep})
        best[m] = {"folds": folds, "t_eval": _t_label([f["t_eval"] for f in folds])}
    chosen = {m: {x: chosen[m][x] for x in common if x in chosen[m]} for m in names}
    scored = [x for x in common if x in chosen[names[0]]]
    scored_recs = {m: [per[m][chosen[m][x]][x] for x in scored] for m in names}
    for m in names:
        best[m]["report"] = compute_metrics(scored_recs[m])
    ref = names[0]
    comparisons, fixed = [], []
    for other in names[1:]:
        for subset, group in subsets(scored_recs[ref]).items():
            tasks = {p["task_id"] for p in group}
            if subset != "overall" and len(tasks) == len(scored):
                continue  # one difficulty holds every problem (HumanEval has none): "overall" says it
            a = [p for p in scored_recs[ref] if p["task_id"] in tasks]
            b = [p for p in scored_recs[other] if p["task_id"] in tasks]
            for k in ks:
                row = paired_comparison(a, b, k, bootstrap_samples, bootstrap_seed)
                comparisons.append({"reference": ref, "model": other, "subset": subset,
                                    "reference_t_eval": best[ref]["t_eval"], "model_t_eval": best[other]["t_eval"],
                                    **row})
        for t in [t for t in per[ref] if t in per[other]]:
            for k in ks:
                row = paired_comparison(recs(ref, t, common), recs(other, t, common), k,
                                        bootstrap_samples, bootstrap_seed)
                fixed.append({"reference": ref, "model": other, "t_eval": t, **row})
    out = {"problems": len(common), "scored_problems": len(scored), "selection": selection,
           "select_metric": select_metric, "selection_caveat": CAVEATS[selection], "n": n, "ks": ks,
           "curves": curves, "best": best, "chosen": chosen, "comparisons": comparisons, "fixed_t_eval": fixed}
    out["headlines"] = [headline(c, selection) for c in comparisons if c["subset"] == "overall" and c["k"] == 1]
    return out


def _t_label(ts: list[float]) -> str:
    """One T_eval, or the T_eval of each half where the halves chose differently."""
    return f"{ts[0]:g}" if len(set(ts)) == 1 else "/".join(f"{t:g}" for t in ts)


def headline(row: dict[str, Any], selection: str) -> str:
    """The comparison as one sentence a reader can quote."""
    how = {"crossfit": "T_eval picked on one half of the problems and scored on the other, both ways",
           "split": "T_eval picked on half of the problems and scored on the other half",
           "all": "T_eval picked on the problems it is scored on (optimistic)"}[selection]
    diff = (f"{100 * row['delta']:+.1f} pass@{row['k']} [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"
            if row.get("low") is not None else f"no difference in pass@{row['k']} ({row.get('note')})")
    def at(t: str) -> str:
        return f"T {t}" + (" (picked on half A/B)" if "/" in t else "")

    return (f"{row['model']} at {at(row['model_t_eval'])} vs {row['reference']} at {at(row['reference_t_eval'])}: "
            f"{diff} over {row['problems']} problems, {row['wins']} wins / {row['losses']} losses "
            f"(sign test p = {row['sign_test_p']:.2g}; {how})")


def write_outputs(record: dict[str, Any], out: Path) -> list[str]:
    """The figures of a sweep record; returns their file names."""
    written = plot(record, out / "sweep") + plot_difference(record, out / "difference")
    if _grid_names(record["models"]):
        written += plot_grid(record, out / "grid")
    return [p.name for p in written]


def compare_key(cell_dirs: dict[str, dict[float, Path]], settings: dict[str, Any]) -> records.StageKey:
    """The compare stage's record key: its settings and every cell's record, by content."""
    return records.StageKey("compare", settings, {f"{m}/T{t:g}": records.record_digest(d)
                                                  for m, ts in cell_dirs.items() for t, d in ts.items()})


def compare(out: Path, cell_dirs: dict[str, dict[float, Path]], n: dict[str, int], settings: dict[str, Any],
            title: str, models: dict[str, str]) -> dict[str, Any]:
    """The `run` protocol's compare stage: best against best over finished cells; writes
    compare.json, the figures, and responses.jsonl, up to settings["responses"] responses
    per model from the cells the comparison scored (what analyze teacher-forces)."""
    results = {m: {t: _verified_results(d) for t, d in ts.items()} for m, ts in cell_dirs.items()}
    summary = summarise(results, n, settings["selection"], settings["select_metric"],
                        settings["bootstrap_samples"], settings["bootstrap_seed"])
    rows = analysis_rows(cell_dirs, summary["chosen"], settings["responses"])
    record = {"stage": "compare", "models": models, "title": title, "settings": settings, **summary,
              "analysis_responses": {m: sum(r["source"] == m for r in rows) for m in models},
              "provenance": provenance()}
    with records.open_stage(out, compare_key(cell_dirs, settings), derived=True) as stage:
        atomic_write_text(out / "compare.json", json.dumps(record, indent=1))
        atomic_write_text(out / "responses.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        write_outputs(record, out)
        stage.finish(["compare.json", "responses.jsonl"], {"provenance": record["provenance"]})
    return record


def _verified_results(directory: Path) -> dict[str, Any]:
    records.verified(directory, ("results.json",))
    return json.loads((directory / "results.json").read_text())


def analysis_rows(cell_dirs: dict[str, dict[float, Path]], chosen: dict[str, dict[str, float]],
                  per_model: int) -> list[dict[str, Any]]:
    """Each model's responses at the T_eval the comparison scored each problem with: first
    every problem's first response, then every second one, ..., up to per_model."""
    from selfdistill.files import read_jsonl

    out = []
    for m, by_task in chosen.items():
        rows = []
        for t in sorted(set(by_task.values())):
            path = cell_dirs[m][t] / "samples.jsonl"
            rows += [{"source": m, "t_eval": t, **{k: r.get(k) for k in (
                "task_id", "sample_index", "prompt", "completion", "finish_reason")}}
                for _, r in read_jsonl(path, "samples") if by_task.get(r["task_id"]) == t]
        order = {task: i for i, task in enumerate(by_task)}
        rows.sort(key=lambda r: (r["sample_index"], order[r["task_id"]]))
        out += rows[:per_model]
    return out


def sweep(config: SweepConfig) -> dict[str, Any]:
    """The `sweep` stage's entry point: evaluates missing cells, writes sweep.json and plots."""
    out = Path(config.out)
    grid = EvalGrid(top_k=config.top_k, top_p=config.top_p, min_p=config.min_p, t_eval=config.t_eval,
                    max_tokens=config.max_tokens, n=config.n, seed=config.seed)
    with records.lock(out):
        results = {}
        for name, model in config.named_models().items():
            cells = cell_configs(grid, model, config.problems, out / name, engine=config.engine,
                                 batch_size=config.batch_size, limit=config.limit, sandbox=config.sandbox,
                                 progress=config.progress)
            results[name] = evaluate_cells(cells, f"sweep {name}")
        summary = summarise(results, {m: config.n for m in results}, config.selection, config.select_metric,
                            config.bootstrap_samples, config.bootstrap_seed)
        record = {"stage": "sweep", "config": to_dict(config), "models": config.named_models(),
                  "title": grid_title(config.problems, grid), **summary, "provenance": provenance()}
        settings = {k: v for k, v in to_dict(config).items() if k not in ("out", "progress", "engine", "sandbox")}
        cells_digest = {f"{n}/T{t:g}": records.record_digest(cell_dir(out / n, t)) for n in results for t in results[n]}
        with records.open_stage(out, records.StageKey("sweep", settings, {"cells": cells_digest}),
                                derived=True) as stage:
            atomic_write_text(out / "sweep.json", json.dumps(record, indent=1))
            write_outputs(record, out)
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
    fig.suptitle(record["title"], fontsize=10)
    fig.tight_layout()
    return save(fig, stem)


def plot_difference(record: dict[str, Any], stem: Path) -> list[Path]:
    """Each model minus the reference at every T_eval both grids share, pass@k with its
    paired bootstrap 95% interval."""
    from selfdistill.plots import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    rows = record["fixed_t_eval"]
    for (model, k) in dict.fromkeys((r["model"], r["k"]) for r in rows):
        pts = [r for r in rows if r["model"] == model and r["k"] == k]
        ts = [r["t_eval"] for r in pts]
        mid = [100 * r["delta"] for r in pts]
        err = [[100 * (r["delta"] - r["low"]) if r["low"] is not None else 0 for r in pts],
               [100 * (r["high"] - r["delta"]) if r["high"] is not None else 0 for r in pts]]
        ax.errorbar(ts, mid, yerr=err, marker="o", capsize=3, label=f"{model} - {pts[0]['reference']}, pass@{k}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("T_eval (both models)")
    ax.set_ylabel("difference (points)")
    ax.set_title("difference at each fixed T_eval, 95% interval", fontsize=10)
    if rows:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "the grids share no T_eval", ha="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
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
    metric = record["select_metric"]
    lines = [f"{metric} (%) over {record['problems']} problems"]
    for name, curve in record["curves"].items():
        lines.append(f"{name:<12} " + " ".join(f"T={t}: {100 * c[metric]:.1f}" for t, c in curve.items()))
    lines.append(f"best T_eval ({record['selection_caveat']}):")
    for n, b in record["best"].items():
        folds = "; ".join(f"picked on {f['fold']}: T {f['t_eval']:g} ({100 * f['selection_score']:.1f}% there)"
                          for f in b["folds"])
        lines.append(f"  {n}: {folds}; {100 * b['report'][metric]:.1f}% on {record['scored_problems']} scored problems")
    for c in record["comparisons"]:
        lines.append(f"  [{c['subset']}] {c['model']} (T {c['model_t_eval']}) - {c['reference']} "
                     f"(T {c['reference_t_eval']}), pass@{c['k']}: {format_interval(c)}; wins/losses "
                     f"{c['wins']}/{c['losses']}, sign test p={c['sign_test_p']:.3g}")
    lines += record["headlines"]
    return "\n".join(lines)
