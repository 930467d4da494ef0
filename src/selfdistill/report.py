"""`selfdistill report RUN_DIR`: RUN/report/report.json, report.md and one self-contained
report.html, rendered from the run directory's stage records and results alone (`run`
ends by calling the same code).

One data structure (`report_data`, written as report.json) holds every number shown; the
markdown and the HTML are two renderings of it, so they cannot disagree. What it shows:
the headline sentence (best against best, cross-fitted by default: sweep.py), pass@k
against T_eval for both models, the best-against-best comparison overall and by difficulty
(paired bootstrap 95% intervals over problems, wins/losses, exact sign test: metrics.py),
the difference at every shared T_eval, the lock/fork diagnostics with their intervals
(analyze.py), the SSD data and the training loss. Where neither model solved a problem of
a subset, the subset says "no solved problems" instead of a degenerate interval.

Every stage read must be finished, with its outputs still the files its record vouches
for (records.verified); the report's own record names those records by content, so a
report is stale as soon as any stage under it changes. A run that has not finished gives
a partial report: what its finished stages show (the curves of the finished cells, the
SSD data, the loss), `pending` naming the rest, whose sections say they have not run.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from selfdistill import records
from selfdistill.config import to_dict
from selfdistill.errors import SelfdistillError
from selfdistill.files import atomic_write_text, read_jsonl
from selfdistill.metrics import format_interval

# what the report reads of each stage; everything else may have been removed to save space
NEEDED = {"cell": ("results.json",), "sample": ("summary.json",), "train": ("loss.json",),
          "compare": ("compare.json",), "analyze": ("analyze.json",)}


@dataclass
class ReportConfig:
    """Write report.json, report.md and report.html for a finished run directory."""

    run_dir: str = field(metadata={"help": "a `selfdistill run` directory"})
    examples: int = field(default=4, metadata={"help": "problems shown with base and SSD responses side by side"})
    max_response_chars: int = field(default=4000, metadata={"help": "longer responses are cut, saying so"})


def _grid(d: dict[str, Any]) -> str:
    return (f"T_eval {', '.join(f'{t:g}' for t in d['t_eval'])}; top-k={d['top_k'] or 'off'}, top-p={d['top_p']}, "
            f"min-p={d['min_p'] or 'off'}, max_tokens={d['max_tokens']}, n={d['n']} (greedy once), seed={d['seed']}")


def _decoding(d: dict[str, Any]) -> str:
    return (f"T={d['temperature']}, top-k={d['top_k'] or 'off'}, top-p={d['top_p']}, min-p={d['min_p'] or 'off'}, "
            f"max_tokens={d['max_tokens']}, n={d['n']}, seed={d['seed']}")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _input_dirs(config: ReportConfig) -> dict[str, Path]:
    """Every stage directory the report reads: the cells of both grids, sample, train,
    compare and analyze."""
    root = Path(config.run_dir)
    run = run_settings(root)
    dirs = {f"{grid}/T{t:g}": root / grid / f"T{t:g}" for grid in ("base_eval", "ssd_eval")
            for t in run[grid]["t_eval"]}
    return dirs | {name: root / name for name in ("sample", "train", "compare", "analyze")}


def report_key(config: ReportConfig) -> records.StageKey:
    """The report stage's record key: the records of every stage it renders, by content."""
    settings = {k: v for k, v in to_dict(config).items() if k != "run_dir"}
    return records.StageKey("report", settings, {name: records.record_digest(d)
                                                 for name, d in _input_dirs(config).items()})


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise SelfdistillError(f"{path}: missing ({what}); is this a finished run directory?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SelfdistillError(f"{path}: malformed JSON ({e.msg})") from None


def run_settings(root: Path) -> dict[str, Any]:
    """The run's resolved config (RUN/config.resolved.yaml) as written by `run`."""
    path = root / "config.resolved.yaml"
    if not path.is_file():
        raise SelfdistillError(f"{root}: no config.resolved.yaml; not a `selfdistill run` directory")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SelfdistillError(f"{path}: malformed YAML ({e})") from None
    if not isinstance(data, dict) or "model" not in data or "base_eval" not in data:
        raise SelfdistillError(f"{path}: not a run config of this version (it needs base_eval and ssd_eval grids)")
    return data


def power_note(row: dict[str, Any] | None) -> str:
    """What the headline interval can and cannot say."""
    if row is None:
        return "No comparison."
    if row.get("low") is None:
        return f"Neither model solved any of the {row['problems']} problems: the run cannot compare them."
    width = 100 * (row["high"] - row["low"])
    if row["low"] <= 0 <= row["high"]:
        return (f"The 95% interval is {width:.1f} points wide and includes zero: over {row['problems']} problems "
                "this run cannot tell SSD from the base model; a difference smaller than about half that width "
                "would not be seen.")
    side = "better" if row["delta"] > 0 else "worse"
    return f"The 95% interval ({width:.1f} points wide) excludes zero: SSD is {side} than the base model here."


def _finished(directory: Path) -> bool:
    record = records.read(directory)
    return bool(record and record.get("complete"))


def _partial_comparison(run: dict[str, Any], dirs: dict[str, Path], stage_records: dict[str, Any]) -> dict[str, Any]:
    """What a run whose comparison has not run yet can already show: pass@k against T_eval
    of every finished cell, over the problems they all judged; nothing best-against-best."""
    from selfdistill.sweep import CAVEATS, curves_over, shared_problems

    cells: dict[str, dict[float, dict[str, Any]]] = {}
    for grid, model in (("base_eval", "base"), ("ssd_eval", "ssd")):
        for t in run[grid]["t_eval"]:
            if f"{grid}/T{t:g}" in stage_records:
                cells.setdefault(model, {})[t] = _load_json(dirs[f"{grid}/T{t:g}"] / "results.json", "results")
    curves = curves_over(*shared_problems(cells, {m: run[g]["n"] for g, m in (("base_eval", "base"),
                                                                               ("ssd_eval", "ssd"))})) if cells else {}
    # the provenance of the stage that finished last
    known = [r["info"]["provenance"] for r in stage_records.values() if r.get("info", {}).get("provenance")]
    return {"provenance": max(known, key=lambda p: str(p.get("date"))) if known else {}, "headlines": [],
            "selection_caveat": CAVEATS[run["selection"]], "curves": curves, "best": {}, "chosen": {},
            "comparisons": [], "fixed_t_eval": []}


def report_data(config: ReportConfig) -> dict[str, Any]:
    """Every number the report shows, from the run directory's records and results alone.
    A run that is not finished gives a partial report: `pending` names the stages that
    have not finished, and their sections say so."""
    root = Path(config.run_dir)
    run = run_settings(root)
    dirs = _input_dirs(config)
    pending = [name for name, d in dirs.items() if not _finished(d)]
    stage_records = {name: records.verified(d, NEEDED["cell" if "/" in name else name])
                     for name, d in dirs.items() if name not in pending}
    comp = (_load_json(dirs["compare"] / "compare.json", "comparison") if "compare" in stage_records
            else _partial_comparison(run, dirs, stage_records))
    an = _load_json(dirs["analyze"] / "analyze.json", "analysis") if "analyze" in stage_records else None
    rows = [{**{k: v for k, v in c.items() if k not in ("a", "b")}, "base": c["a"], "ssd": c["b"]}
            for c in comp["comparisons"]]
    headline_row = next((r for r in rows if r["subset"] == "overall" and r["k"] == 1), None)
    data = {
        "model": run["model"],
        "note": run.get("note"),
        "pending": pending,
        "run": {k: run.get(k) for k in ("eval_problems", "eval_limit", "train_problems", "train_limit",
                                        "sample_decoding", "base_eval", "ssd_eval", "selection", "select_metric",
                                        "sample_filter", "training", "engine", "overrides")},
        "provenance": comp.get("provenance", {}),
        "stages": {name: {"directory": str(d), "record": records.record_digest(d),
                          "git_revision": stage_records[name].get("info", {}).get("provenance", {}).get("git_revision")
                          if name in stage_records else None}
                   for name, d in dirs.items()},
        "headlines": comp["headlines"],
        "reading": None,
        "power": power_note(headline_row) if "compare" in stage_records else pending_note(pending),
        "selection_caveat": comp["selection_caveat"],
        "curves": comp["curves"],
        "best": comp["best"],
        "chosen": comp["chosen"],
        "comparison": rows,
        "fixed_t_eval": comp["fixed_t_eval"],
        "data": _load_json(dirs["sample"] / "summary.json", "SSD data")["summary"] if "sample" in stage_records else None,
        "loss": _load_json(dirs["train"] / "loss.json", "training loss") if "train" in stage_records else None,
        "analysis": None if an is None else {
            "thresholds": an["thresholds"], "noise": an["noise"], "responses": an["responses"],
            "responses_by_source": an.get("responses_by_source"),
            "rows": [{"class": c, "model": n, "positions": s["positions"],
                      **{k: s[k] for k in ANALYSIS_KEYS}, "interval": {k: s["interval"][k] for k in ANALYSIS_KEYS}}
                     for c in ("lock", "fork", "other") for n, d in an["diagnostics"].items()
                     for s in [d[c]] if s["positions"]],
            "differences": {c: {k: d[k] for k in ANALYSIS_KEYS} for c, d in an["differences"].items()}},
    }
    data["reading"] = reading(data)  # placed after the headline, computed from what follows it
    return data


def _direction(d: dict[str, Any] | None) -> int:
    """+1 / -1 where a difference's 95% interval lies above / below zero, 0 where it holds zero."""
    if not d or d.get("low") is None:
        return 0
    return 1 if d["low"] > 0 else -1 if d["high"] < 0 else 0


def _points(row: dict[str, Any]) -> str:
    return f"{100 * row['delta']:+.1f} points [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"


def reading(data: dict[str, Any]) -> list[str]:
    """What the run shows, in plain sentences, each computed from numbers the report shows
    below it: whether SSD helped (best against best), where (the subsets whose interval
    excludes zero), and why (the lock and fork diagnostics against SSD's mechanism)."""
    rows = data["comparison"]
    head = next((r for r in rows if r["subset"] == "overall" and r["k"] == 1), None)
    if head is None:
        return []
    at = f"each at its best T_eval (base {head['reference_t_eval']}, SSD {head['model_t_eval']})"
    if head.get("low") is None:
        out = [f"Whether SSD helped: neither model solved any of the {head['problems']} problems, {at}, so this "
               "run cannot say."]
    else:
        verdict = {1: "better than the base model", -1: "worse than the base model",
                   0: "not distinguishable from the base model over these problems"}[_direction(head)]
        out = [f"Whether SSD helped: {at}, SSD's pass@1 is {100 * head['ssd']:.1f}% against {100 * head['base']:.1f}%, "
               f"{_points(head)} over {head['problems']} problems: {verdict}."]
        others = [r for r in rows if r["subset"] == "overall" and r["k"] > 1 and r.get("low") is not None]
        if others:
            out[-1] += " " + "; ".join(f"pass@{r['k']} {_points(r)}" for r in others) + "."
    subsets = [r for r in rows if r["subset"] != "overall" and r["k"] == 1]
    ahead = [r for r in subsets if _direction(r) > 0]
    behind = [r for r in subsets if _direction(r) < 0]
    unsolved = [r["subset"] for r in subsets if r.get("low") is None]
    if subsets:
        def listed(group: list[dict[str, Any]]) -> str:
            return ", ".join(f"{r['subset']} ({_points(r)})" for r in group)

        where = ([f"SSD is ahead on {listed(ahead)}"] if ahead else []) + \
            ([f"behind on {listed(behind)}"] if behind else [])
        out.append("Where: " + ("; ".join(where) if where else
                                "no subset's pass@1 interval excludes zero") +
                   (f"; neither model solved a problem of: {', '.join(unsolved)}" if unsolved else "") + ".")
    an = data["analysis"]
    if an:
        by = {(r["class"], r["model"]): r for r in an["rows"]}
        why = []
        lock, fork = an["differences"].get("lock"), an["differences"].get("fork")
        if lock and ("lock", "base") in by:
            d = lock["tail_mass_beyond_support"]
            why.append(f"at locks ({an['thresholds']['lock']}), the mass beyond the truncated support is "
                       f"{by[('lock', 'ssd')]['tail_mass_beyond_support']:.4f} for SSD against "
                       f"{by[('lock', 'base')]['tail_mass_beyond_support']:.4f} for the base model "
                       f"({d['delta']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]): " +
                       {-1: "the tail shrank, as SSD's mechanism predicts", 1: "the tail grew, against the prediction",
                        0: "no change outside the noise"}[_direction(d)])
        else:
            why.append("no position of the responses is a lock")
        if fork and ("fork", "base") in by:
            d = fork["top1_mass"]
            why.append(f"at forks ({an['thresholds']['fork']}), the top-1 mass is {by[('fork', 'ssd')]['top1_mass']:.3f} "
                       f"for SSD against {by[('fork', 'base')]['top1_mass']:.3f} ({d['delta']:+.3f} "
                       f"[{d['low']:+.3f}, {d['high']:+.3f}]): " +
                       {-1: "flatter, the plateau the mechanism predicts", 1: "sharper: the fork lost diversity",
                        0: "no change outside the noise, so the forks kept their spread"}[_direction(d)])
        else:
            why.append("no position of the responses is a fork")
        out.append(f"Why, on {an['responses']} responses teacher-forced through both models: " + "; ".join(why) + ".")
    return out


def pending_note(pending: list[str]) -> str:
    """What a partial report cannot say yet, and how to finish it."""
    groups: dict[str, list[str]] = {}
    for name in pending:  # a grid's cells as one: ssd_eval (T 0.6, 1)
        stage, _, cell = name.partition("/T")
        groups.setdefault(stage, []).extend([cell] if cell else [])
    named = [f"{g} (T {', '.join(ts)})" if ts else g for g, ts in groups.items()]
    return (f"Partial report: {', '.join(named)} not finished, so there is no comparison yet. Rerunning "
            "`selfdistill run` with the run's config continues where it stopped (`--plan` shows what is left); "
            "the report is redone when it ends.")


ANALYSIS_KEYS = ("top1_mass", "entropy", "tail_mass_beyond_support")


def _setting_rows(data: dict[str, Any]) -> list[list[Any]]:
    r, prov = data["run"], data["provenance"]
    limit = lambda n: f" (first {n})" if n else ""  # noqa: E731
    return [["benchmark", f"{r['eval_problems']}{limit(r['eval_limit'])}"],
            ["SSD prompts", f"{r['train_problems']}{limit(r['train_limit'])}"],
            ["sampling (T_train)", _decoding(r["sample_decoding"])], ["filter", r["sample_filter"]],
            ["base grid", _grid(r["base_eval"])], ["SSD grid", _grid(r["ssd_eval"])],
            ["best T_eval", f"{r['selection']} on {r['select_metric']}: {data['selection_caveat']}"],
            ["engine", json.dumps(r["engine"])], ["training", json.dumps(r["training"])],
            ["overrides", " ".join(r.get("overrides") or []) or "none"],
            ["date", prov.get("date")], ["git", prov.get("git_revision")], ["cpu", prov.get("cpu")],
            ["versions", ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items() if v)]]


COMPARISON_HEADER = ["subset", "problems", "k", "base (%)", "SSD (%)", "diff [95% interval]", "wins/losses/ties", "p"]


def _comparison_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [[r["subset"], r["problems"], r["k"], _pct(r["base"]), _pct(r["ssd"]), format_interval(r),
             f"{r['wins']}/{r['losses']}/{r['ties']}", f"{r['sign_test_p']:.3g}"] for r in data["comparison"]]


def _curve_table(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    ks = [k for k in next(iter(next(iter(data["curves"].values())).values())) if k.startswith("pass@")]
    rows = [[m, t] + [_pct(c.get(k)) for k in ks] for m, curve in data["curves"].items() for t, c in curve.items()]
    return ["model", "T_eval"] + [f"{k} (%)" for k in ks], rows


def _best_table(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = []
    for m, b in data["best"].items():
        for f in b["folds"]:
            rows.append([m, f["fold"], f["t_eval"], f["selection_problems"], _pct(f["selection_score"]),
                         f["scored_problems"]])
    return ["model", "picked on half", "best T_eval", "problems picked on", "score there (%)", "problems scored"], rows


def _fixed_table(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    return (["T_eval", "k", "base (%)", "SSD (%)", "diff [95% interval]", "wins/losses", "p"],
            [[f"{r['t_eval']:g}", r["k"], _pct(r["a"]), _pct(r["b"]), format_interval(r),
              f"{r['wins']}/{r['losses']}", f"{r['sign_test_p']:.3g}"] for r in data["fixed_t_eval"]])


def _data_rows(d: dict[str, Any]) -> list[list[Any]]:
    if not d["generated"]:
        return [["responses", 0]]
    rows = [["responses", d["generated"]], ["kept for training", f"{d['kept']} (filter {d['filter']})"],
            ["with extractable code", f"{_pct(d['with_code_share'])}%"], ["empty", f"{_pct(d['empty_share'])}%"],
            ["truncated at max_tokens", f"{_pct(d['truncated_share'])}%"],
            ["completion tokens (median / p90 / max)", f"{d['completion_tokens']['median']:.0f} / "
             f"{d['completion_tokens']['p90']:.0f} / {d['completion_tokens']['max']:.0f}"]]
    if d.get("unfinished_thought_share"):  # a thinking model whose thought never closed
        rows.insert(4, ["thought never closed (no answer)", f"{_pct(d['unfinished_thought_share'])}%"])
    return rows


def _loss_line(loss: list[dict[str, Any]]) -> str:
    if not loss:
        return "no loss logged"
    return f"{loss[-1]['step']} optimiser steps; loss first {loss[0]['loss']:.4f}, last {loss[-1]['loss']:.4f}"


def _iv(x: float, iv: list[float], digits: int = 3) -> str:
    return f"{x:.{digits}f} [{iv[0]:.{digits}f}, {iv[1]:.{digits}f}]"


def _analysis_table(an: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    return (["class", "model", "positions", "top-1 mass [95%]", "entropy [95%]", "tail beyond support [95%]"],
            [[r["class"], r["model"], r["positions"], _iv(r["top1_mass"], r["interval"]["top1_mass"]),
              _iv(r["entropy"], r["interval"]["entropy"]),
              _iv(r["tail_mass_beyond_support"], r["interval"]["tail_mass_beyond_support"], 4)] for r in an["rows"]])


def _difference_table(an: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    from selfdistill.analyze import format_difference

    return (["class", "SSD - base: top-1 mass", "entropy", "tail beyond support"],
            [[c, format_difference(d["top1_mass"], 3), format_difference(d["entropy"], 3),
              format_difference(d["tail_mass_beyond_support"], 4)] for c, d in an["differences"].items()])


NOT_YET = "Not run yet (see the note at the top)."


def render_markdown(data: dict[str, Any]) -> str:
    lines = [f"# SSD report: {data['model']}", ""]
    if data["note"]:
        lines += [f"> {data['note']}", ""]
    lines += ["## Headline", ""] + [f"**{h}**" for h in data["headlines"]] + ["", data["power"], ""]
    if data["reading"]:
        lines += ["## What this run shows", ""] + [f"- {r}" for r in data["reading"]] + [""]
    lines += ["## Configuration and provenance", ""] + [f"- {k}: {v}" for k, v in _setting_rows(data)]
    lines += ["", "## pass@k against T_eval", ""]
    if data["curves"]:
        lines += (["Figures: compare/sweep.png, compare/difference.png.", ""] if data["comparison"] else [])
        lines += _md_table(*_curve_table(data))
    else:
        lines.append(NOT_YET)
    lines += ["", "## Best against best", ""]
    if data["comparison"]:
        lines += [f"{data['selection_caveat']}.", ""] + _md_table(*_best_table(data)) + [""]
        lines += ["Percent; the difference with its paired bootstrap 95% interval over problems; wins/losses:",
                  "problems where SSD's pass@k is higher/lower; p: two-sided exact sign test on them.", ""]
        lines += _md_table(COMPARISON_HEADER, _comparison_rows(data))
        lines += ["", "## The difference at each fixed T_eval", ""] + _md_table(*_fixed_table(data))
    else:
        lines += [NOT_YET, "", "## The difference at each fixed T_eval", "", NOT_YET]
    lines += ["", "## Lock/fork diagnostics", ""]
    an = data["analysis"]
    if an:
        lines += ["; ".join(f"{k}: {v}" for k, v in an["thresholds"].items()), "", f"{an['noise']}.", ""]
        lines += _md_table(*_analysis_table(an)) + [""] + _md_table(*_difference_table(an))
    else:
        lines.append(NOT_YET)
    lines += ["", "## SSD data (from `sample`)", ""]
    lines += [f"- {k}: {v}" for k, v in _data_rows(data["data"])] if data["data"] else [NOT_YET]
    lines += ["", "## Training", "",
              f"- {_loss_line(data['loss'])} (curve: train/loss.png)" if data["loss"] is not None else NOT_YET, "",
              "Artifacts: " + ", ".join(f"{n}/" for n, st in data["stages"].items() if st["record"]) +
              " (each with its stage record, config and provenance).", ""]
    return "\n".join(lines)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path, "samples")] if path.is_file() else []


def _png(fig: Any) -> str:
    """A figure as a data: URI, so the page needs no other file and no network."""
    import io

    from selfdistill.plots import pyplot

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _file_png(path: Path) -> str | None:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode() if path.is_file() else None


def _figures(loss: list[dict[str, Any]], lengths: dict[str, list[int]], verdicts: dict[str, Counter]) -> dict[str, str]:
    from selfdistill.plots import pyplot

    plt = pyplot()
    figs = {}
    if loss:
        from selfdistill.training import loss_figure

        figs["loss"] = _png(loss_figure(loss))
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, values in lengths.items():
        if values:
            ax.hist(values, bins=20, alpha=0.55, label=f"{name} ({len(values)})")
    ax.set_xlabel("completion tokens")
    ax.set_ylabel("responses")
    ax.legend(fontsize=8)
    figs["lengths"] = _png(fig)
    statuses = sorted({s for c in verdicts.values() for s in c})
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    width = 0.8 / max(1, len(verdicts))
    for i, (name, counts) in enumerate(verdicts.items()):
        ax.bar([j + i * width for j in range(len(statuses))], [counts.get(s, 0) for s in statuses], width, label=name)
    ax.set_xticks([j + width * (len(verdicts) - 1) / 2 for j in range(len(statuses))], statuses, rotation=20)
    ax.set_ylabel("responses")
    ax.legend(fontsize=8)
    figs["verdicts"] = _png(fig)
    return figs


def _table(header: list[str], rows: list[list[Any]], table_id: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    ident = f" id='{table_id}'" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def _examples(base_rows: list[dict[str, Any]], ssd_rows: list[dict[str, Any]], count: int, cap: int) -> str:
    """Problems with the two models' first responses side by side: disagreements first."""
    first = lambda rows: {r["task_id"]: r for r in rows if r.get("sample_index", 0) in (0, "0")}  # noqa: E731
    b, s = first(base_rows), first(ssd_rows)
    common = [t for t in b if t in s]
    passed = lambda r: r.get("result", {}).get("status") == "passed"  # noqa: E731
    common.sort(key=lambda t: passed(b[t]) == passed(s[t]))  # disagreements first, order kept
    cut = lambda text: text if len(text) <= cap else text[:cap] + f"\n... ({len(text) - cap} more characters)"  # noqa: E731
    parts = []
    for t in common[:count]:
        cells = "".join(
            f"<div><h4>{name}: {html.escape(r.get('result', {}).get('status', '?'))}</h4>"
            f"<pre>{html.escape(cut(r.get('completion', '')))}</pre></div>" for name, r in (("base", b[t]), ("SSD", s[t])))
        parts.append(f"<section class='example'><h3>{html.escape(t)}</h3><div class='pair'>{cells}</div></section>")
    return "".join(parts) or "<p>No problem was answered by both models.</p>"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}pre{background:#f7f7f7;padding:8px;overflow-x:auto;
font-size:12px;white-space:pre-wrap}img{max-width:100%;border:1px solid #eee}.pair{display:grid;
grid-template-columns:1fr 1fr;gap:12px}.figs{display:flex;flex-wrap:wrap;gap:12px}.note{color:#666}
code{background:#f3f3f3;padding:0 3px}.callout{background:#fff6d6;border-left:4px solid #e0b000;padding:6px 10px}
.headline{font-size:1.1em}"""


def _chosen_rows(root: Path, data: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """A model's judged responses at the T_eval the comparison scored each problem with."""
    grid = "base_eval" if model == "base" else "ssd_eval"
    chosen = data["chosen"].get(model, {})
    rows = []
    for t in sorted(set(chosen.values())):
        rows += [r for r in _rows(root / grid / f"T{t:g}" / "samples.jsonl") if chosen.get(r["task_id"]) == t]
    return rows


def render_html(data: dict[str, Any], root: Path, config: ReportConfig) -> str:
    """report.html: one file, images inlined, no scripts and no network. The figures and
    the responses side by side come from the run's sample files where they were kept."""
    sample_rows = _rows(root / "sample" / "generations.jsonl") if data["data"] else []
    base_rows, ssd_rows = _chosen_rows(root, data, "base"), _chosen_rows(root, data, "ssd")
    lengths = {"SSD data": [r["completion_tokens"] for r in sample_rows if "completion_tokens" in r],
               "base eval": [r["completion_tokens"] for r in base_rows if "completion_tokens" in r],
               "SSD eval": [r["completion_tokens"] for r in ssd_rows if "completion_tokens" in r]}
    verdicts = {"base": Counter(r["result"]["status"] for r in base_rows if "result" in r),
                "SSD": Counter(r["result"]["status"] for r in ssd_rows if "result" in r)}
    figs = _figures(data["loss"] or [], lengths, verdicts)
    e = html.escape
    not_yet = f"<p class='note'>{e(NOT_YET)}</p>"
    an = data["analysis"]
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>SSD report: {e(data['model'])}</title>"
           f"<style>{_CSS}</style></head><body>",
           f"<h1>SSD report: {e(data['model'])}</h1>"]
    if data["note"]:
        out.append(f"<p class='callout' id='note'>{e(data['note'])}</p>")
    out += ["<h2>Headline</h2>"] + [f"<p class='headline'><b>{e(h)}</b></p>" for h in data["headlines"]]
    out.append(f"<p id='power'{' class=callout' if data['pending'] else ''}>{e(data['power'])}</p>")
    if data["reading"]:
        out += ["<h2>What this run shows</h2>", "<ul id='reading'>"] + \
            [f"<li>{e(r)}</li>" for r in data["reading"]] + ["</ul>"]
    out += ["<h2>Configuration and provenance</h2>", _table(["setting", "value"], _setting_rows(data)),
            "<h2>pass@k against T_eval</h2>", _table(*_curve_table(data), "curves") if data["curves"] else not_yet]
    for stem, alt in (("sweep", "pass@k against T_eval"), ("difference", "difference at each fixed T_eval")):
        uri = _file_png(root / "compare" / f"{stem}.png") if data["comparison"] else None
        if uri:
            out.append(f"<img alt='{alt}' src='{uri}'>")
    out.append("<h2>Best against best</h2>")
    if data["comparison"]:
        out += [f"<p class='note'>{e(data['selection_caveat'])}.</p>", _table(*_best_table(data), "best"),
                "<p class='note'>Difference in percentage points with its paired bootstrap 95% interval over "
                "problems; wins/losses: problems where SSD's pass@k is higher/lower; p: exact sign test.</p>",
                _table(COMPARISON_HEADER, _comparison_rows(data), "comparison"),
                "<h2>The difference at each fixed T_eval</h2>", _table(*_fixed_table(data), "fixed-t")]
    else:
        out += [not_yet, "<h2>The difference at each fixed T_eval</h2>", not_yet]
    out.append("<h2>Lock/fork diagnostics</h2>")
    if an:
        out += ["<p class='note'>" + e("; ".join(f"{k}: {v}" for k, v in an["thresholds"].items())) +
                f". {e(an['noise'])}.</p>",
                _table(*_analysis_table(an), "analysis"), _table(*_difference_table(an), "analysis-differences")]
        uri = _file_png(root / "analyze" / "analyze.png")
        if uri:
            out.append(f"<img alt='lock/fork diagnostics' src='{uri}'>")
    else:
        out.append(not_yet)
    out += ["<h2>Training</h2>"]
    out += ([f"<p>{e(_loss_line(data['loss']))}</p>",
             f"<img alt='training loss' src='{figs['loss']}'>" if "loss" in figs else ""]
            if data["loss"] is not None else [not_yet])
    out += ["<h2>Sampling statistics</h2>",
            _table(["SSD data", "value"], _data_rows(data["data"]), "data") if data["data"] else not_yet,
            "<div class='figs'>", f"<img alt='response lengths' src='{figs['lengths']}'>",
            f"<img alt='verdicts' src='{figs['verdicts']}'>", "</div>",
            "<h2>Responses side by side</h2>"]
    out += (["<p class='note'>Each model at the T_eval the comparison scored the problem with.</p>",
             _examples(base_rows, ssd_rows, config.examples, config.max_response_chars)]
            if data["chosen"] else [not_yet])
    out.append("</body></html>")
    return "\n".join(out)


def report(config: ReportConfig) -> dict[str, Path]:
    """The `report` stage's entry point: RUN/report/report.{json,md,html} from a run directory."""
    root = Path(config.run_dir)
    run_settings(root)  # a clear error for a directory that is not a run
    out = root / "report"
    with records.open_stage(out, report_key(config), derived=True) as stage:
        data = report_data(config)
        atomic_write_text(out / "report.json", json.dumps(data, indent=1))
        atomic_write_text(out / "report.md", render_markdown(data))
        atomic_write_text(out / "report.html", render_html(data, root, config))
        stage.finish(["report.json", "report.md", "report.html"],
                     {"provenance": data["provenance"], "pending": data["pending"]})
    return {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
