"""`selfdistill report RUN_DIR`: RUN/report/report.json, report.md and one self-contained
report.html, rendered from the run directory's stage records and results alone (`run`
ends by calling the same code).

One data structure (`report_data`, written as report.json) holds every number shown; the
markdown and the HTML are two renderings of it, so they cannot disagree. base vs SSD:
pass@k with paired bootstrap 95% intervals, per-problem win/loss counts and an exact sign
test (metrics.py). The interval of a difference resamples problems with replacement (the
same problems for both models, hence paired) and takes the 2.5th and 97.5th percentiles of
the mean per-problem difference in pass@k. Where neither model solved a problem of a
subset, the subset says "no solved problems" instead of a degenerate interval.

Every stage read must be finished, with its outputs still the files its record vouches
for (records.verified); the report's own record names those records by content, so a
report is stale as soon as any stage under it changes.
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
from selfdistill.metrics import format_interval, ks_for, paired_comparison, subsets

RUN_STAGES = ("base_eval", "sample", "train", "ssd_eval")
# what the report reads of each stage; everything else may have been removed to save space
NEEDED = {"base_eval": ("results.json",), "ssd_eval": ("results.json",), "sample": ("summary.json",),
          "train": ("loss.json",), "sweep": ("sweep.json",), "analyze": ("analyze.json",)}


@dataclass
class ReportConfig:
    """Write report.json, report.md and report.html for a finished run directory."""

    run_dir: str = field(metadata={"help": "a `selfdistill run` directory"})
    sweep_dir: str | None = field(default=None, metadata={"help": "a sweep's output (default RUN/sweep if present)"})
    analyze_dir: str | None = field(default=None, metadata={
        "help": "an analyze output (default RUN/analyze if present)"})
    examples: int = field(default=4, metadata={"help": "problems shown with base and SSD responses side by side"})
    max_response_chars: int = field(default=4000, metadata={"help": "longer responses are cut, saying so"})


def compare(base: dict[str, Any], ssd: dict[str, Any], samples: int, seed: int) -> list[dict[str, Any]]:
    """Rows (subset, k, base, ssd, delta, low, high, wins, losses, ties, sign_test_p) over
    the problems both runs judged."""
    s = {p["task_id"]: p for p in ssd["problems"]}
    common = [p for p in base["problems"] if p["task_id"] in s]
    if not common:
        raise SelfdistillError("the base and SSD evaluations share no problems")
    n_min = min(min(p["n"] for p in common), min(s[p["task_id"]]["n"] for p in common))
    rows = []
    for name, group in subsets(common).items():
        other = [s[p["task_id"]] for p in group]
        for k in ks_for(n_min):
            row = paired_comparison(group, other, k, samples, seed)
            row["base"], row["ssd"] = row.pop("a"), row.pop("b")
            rows.append({"subset": name, **row})
    return rows


def _decoding(d: dict[str, Any]) -> str:
    return (f"T={d['temperature']}, top-k={d['top_k'] or 'off'}, top-p={d['top_p']}, min-p={d['min_p'] or 'off'}, "
            f"max_tokens={d['max_tokens']}, n={d['n']}, seed={d['seed']}")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _input_dirs(config: ReportConfig) -> dict[str, Path]:
    root = Path(config.run_dir)
    dirs = {name: root / name for name in RUN_STAGES}
    for name, given in (("sweep", config.sweep_dir), ("analyze", config.analyze_dir)):
        d = Path(given) if given else root / name
        if given or (d / records.RECORD).is_file():
            dirs[name] = d
    return dirs


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
    if not isinstance(data, dict) or "model" not in data:
        raise SelfdistillError(f"{path}: not a run config")
    return data


def report_data(config: ReportConfig) -> dict[str, Any]:
    """Every number the report shows, from the run directory's records and results alone."""
    root = Path(config.run_dir)
    run = run_settings(root)
    dirs = _input_dirs(config)
    stage_records = {name: records.verified(d, NEEDED[name]) for name, d in dirs.items()}
    base = _load_json(dirs["base_eval"] / "results.json", "base evaluation")
    ssd = _load_json(dirs["ssd_eval"] / "results.json", "SSD evaluation")
    data = {
        "model": run["model"],
        "run": {k: run.get(k) for k in ("eval_problems", "eval_limit", "train_problems", "train_limit",
                                        "sample_decoding", "base_decoding", "ssd_decoding", "sample_filter",
                                        "training", "engine", "overrides")},
        "provenance": ssd["config"].get("provenance", {}),
        "stages": {name: {"directory": str(d), "record": records.record_digest(d),
                          "git_revision": stage_records[name].get("info", {}).get("provenance", {}).get("git_revision")}
                   for name, d in dirs.items()},
        "metrics": {"base": base["metrics"], "ssd": ssd["metrics"]},
        "comparison": compare(base, ssd, run.get("bootstrap_samples", 2000), run.get("bootstrap_seed", 0)),
        "data": _load_json(dirs["sample"] / "summary.json", "SSD data")["summary"],
        "loss": _load_json(dirs["train"] / "loss.json", "training loss"),
        "sweep": None, "analysis": None,
    }
    if "sweep" in dirs:
        sw = _load_json(dirs["sweep"] / "sweep.json", "sweep")
        data["sweep"] = {k: sw[k] for k in ("selection_caveat", "best", "comparisons", "report_problems")} | {
            "select_metric": sw["config"]["select_metric"], "directory": str(dirs["sweep"])}
    if "analyze" in dirs:
        an = _load_json(dirs["analyze"] / "analyze.json", "analyze")
        data["analysis"] = {"thresholds": an["thresholds"], "directory": str(dirs["analyze"]),
                            "rows": [{"class": c, "model": n, **{k: s[k] for k in (
                                "positions", "top1_mass", "entropy", "tail_mass_beyond_support")}}
                                     for c in ("lock", "fork", "other") for n, d in an["diagnostics"].items()
                                     for s in [d[c]] if s["positions"]]}
    return data


def _setting_rows(data: dict[str, Any]) -> list[list[Any]]:
    r, prov = data["run"], data["provenance"]
    limit = lambda n: f" (first {n})" if n else ""  # noqa: E731
    return [["benchmark", f"{r['eval_problems']}{limit(r['eval_limit'])}"],
            ["SSD prompts", f"{r['train_problems']}{limit(r['train_limit'])}"],
            ["sampling (T_train)", _decoding(r["sample_decoding"])], ["filter", r["sample_filter"]],
            ["base eval", _decoding(r["base_decoding"])], ["SSD eval", _decoding(r["ssd_decoding"])],
            ["engine", json.dumps(r["engine"])], ["training", json.dumps(r["training"])],
            ["overrides", " ".join(r.get("overrides") or []) or "none"],
            ["date", prov.get("date")], ["git", prov.get("git_revision")], ["cpu", prov.get("cpu")],
            ["versions", ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items() if v)]]


COMPARISON_HEADER = ["subset", "problems", "k", "base (%)", "SSD (%)", "diff [95% interval]", "wins/losses/ties", "p"]


def _comparison_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [[r["subset"], r["problems"], r["k"], _pct(r["base"]), _pct(r["ssd"]), format_interval(r),
             f"{r['wins']}/{r['losses']}/{r['ties']}", f"{r['sign_test_p']:.3g}"] for r in data["comparison"]]


def _data_rows(d: dict[str, Any]) -> list[list[Any]]:
    if not d["generated"]:
        return [["responses", 0]]
    return [["responses", d["generated"]], ["kept for training", f"{d['kept']} (filter {d['filter']})"],
            ["with extractable code", f"{_pct(d['with_code_share'])}%"], ["empty", f"{_pct(d['empty_share'])}%"],
            ["truncated at max_tokens", f"{_pct(d['truncated_share'])}%"],
            ["completion tokens (median / p90 / max)", f"{d['completion_tokens']['median']:.0f} / "
             f"{d['completion_tokens']['p90']:.0f} / {d['completion_tokens']['max']:.0f}"]]


def _loss_line(loss: list[dict[str, Any]]) -> str:
    if not loss:
        return "no loss logged"
    return f"{loss[-1]['step']} optimiser steps; loss first {loss[0]['loss']:.4f}, last {loss[-1]['loss']:.4f}"


def _sweep_tables(sw: dict[str, Any]) -> tuple[tuple[list[str], list[list[Any]]], tuple[list[str], list[list[Any]]]]:
    m = sw["select_metric"]
    best = (["model", "best T_eval", f"{m} on selection (%)", f"on {sw['report_problems']} reported problems (%)"],
            [[n, b["t_eval"], _pct(b["selection_score"]), _pct(b["report"][m])] for n, b in sw["best"].items()])
    comps = (["model - reference", "k", "diff [95% interval]", "wins/losses", "p"],
             [[f"{c['model']} (T {c['model_t_eval']:g}) - {c['reference']} (T {c['reference_t_eval']:g})",
               c["k"], format_interval(c), f"{c['wins']}/{c['losses']}", f"{c['sign_test_p']:.3g}"]
              for c in sw["comparisons"]])
    return best, comps


def _analysis_table(an: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    return (["class", "model", "positions", "top-1 mass", "entropy", "tail beyond support"],
            [[r["class"], r["model"], r["positions"], *(f"{r[k]:.3f}" for k in ("top1_mass", "entropy",
                                                                             "tail_mass_beyond_support"))]
             for r in an["rows"]])


def render_markdown(data: dict[str, Any]) -> str:
    lines = [f"# SSD report: {data['model']}", ""]
    lines += [f"- {k}: {v}" for k, v in _setting_rows(data)]
    lines += ["", "## pass@k, base vs SSD", "",
              "Percent; the difference with its paired bootstrap 95% interval over problems; wins/losses:",
              "problems where SSD's pass@k is higher/lower; p: two-sided exact sign test on them.", ""]
    lines += _md_table(COMPARISON_HEADER, _comparison_rows(data))
    lines += ["", "## Temperature sweep", ""]
    if data["sweep"]:
        lines.append(f"{data['sweep']['selection_caveat']}.")
        lines.append("")
        for header, rows in _sweep_tables(data["sweep"]):
            lines += _md_table(header, rows) + [""]
    else:
        lines.append("No sweep in this run directory.")
    lines += ["", "## Lock/fork diagnostics", ""]
    if data["analysis"]:
        lines.append("; ".join(f"{k}: {v}" for k, v in data["analysis"]["thresholds"].items()))
        lines.append("")
        lines += _md_table(*_analysis_table(data["analysis"]))
    else:
        lines.append("No analysis in this run directory.")
    lines += ["", "## SSD data (from `sample`)", ""] + [f"- {k}: {v}" for k, v in _data_rows(data["data"])]
    lines += ["", "## Training", "", f"- {_loss_line(data['loss'])} (curve: train/loss.png)", "",
              "Artifacts: " + ", ".join(f"{n}/" for n in data["stages"]) + " (each with its stage record, "
              "config and provenance).", ""]
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


def _metrics_rows(metrics: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    ks = [k for k in metrics if k.startswith("pass@")]
    rows = [["overall", metrics["count"]] + [f"{100 * metrics[k]:.1f}" for k in ks]]
    for d, m in metrics.get("by_difficulty", {}).items():
        rows.append([d, m["count"]] + [f"{100 * m[k]:.1f}" for k in ks])
    return ["subset", "problems"] + [f"{k} (%)" for k in ks], rows


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
code{background:#f3f3f3;padding:0 3px}"""


def render_html(data: dict[str, Any], root: Path, config: ReportConfig) -> str:
    """report.html: one file, images inlined, no scripts and no network. The figures and
    the responses side by side come from the run's sample files where they were kept."""
    sample_rows = _rows(root / "sample" / "generations.jsonl")
    base_rows, ssd_rows = _rows(root / "base_eval" / "samples.jsonl"), _rows(root / "ssd_eval" / "samples.jsonl")
    lengths = {"SSD data": [r["completion_tokens"] for r in sample_rows if "completion_tokens" in r],
               "base eval": [r["completion_tokens"] for r in base_rows if "completion_tokens" in r],
               "SSD eval": [r["completion_tokens"] for r in ssd_rows if "completion_tokens" in r]}
    verdicts = {"base": Counter(r["result"]["status"] for r in base_rows if "result" in r),
                "SSD": Counter(r["result"]["status"] for r in ssd_rows if "result" in r)}
    figs = _figures(data["loss"], lengths, verdicts)
    e = html.escape
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>SSD report: {e(data['model'])}</title>"
           f"<style>{_CSS}</style></head><body>",
           f"<h1>SSD report: {e(data['model'])}</h1>",
           "<h2>Configuration and provenance</h2>", _table(["setting", "value"], _setting_rows(data)),
           "<h2>pass@k by difficulty</h2>"]
    for name, key in (("base", "base"), ("SSD", "ssd")):
        header, body = _metrics_rows(data["metrics"][key])
        out += [f"<h3>{name}</h3>", _table(header, body, f"metrics-{key}")]
    out += ["<h2>Base vs SSD</h2><p class='note'>Difference in percentage points with its paired bootstrap 95% "
            "interval over problems; wins/losses: problems where SSD's pass@k is higher/lower; p: exact sign test.</p>",
            _table(COMPARISON_HEADER, _comparison_rows(data), "comparison")]
    out.append("<h2>Temperature sweep</h2>")
    sw = data["sweep"]
    if sw:
        out.append(f"<p class='note'>{e(sw['selection_caveat'])}.</p>")
        (bh, br), (ch, cr) = _sweep_tables(sw)
        out += [_table(bh, br, "sweep-best"), _table(ch, cr, "sweep-comparisons")]
        for stem in ("sweep", "grid"):
            uri = _file_png(Path(sw["directory"]) / f"{stem}.png")
            if uri:
                out.append(f"<img alt='{stem}' src='{uri}'>")
    else:
        out.append(f"<p class='note'>No sweep in {e(str(root / 'sweep'))} (run <code>selfdistill sweep --out "
                   f"{e(str(root / 'sweep'))}</code>).</p>")
    out.append("<h2>Lock/fork diagnostics</h2>")
    an = data["analysis"]
    if an:
        out.append("<p class='note'>" + e("; ".join(f"{k}: {v}" for k, v in an["thresholds"].items())) + "</p>")
        out.append(_table(*_analysis_table(an), "analysis"))
        uri = _file_png(Path(an["directory"]) / "analyze.png")
        if uri:
            out.append(f"<img alt='lock/fork diagnostics' src='{uri}'>")
    else:
        out.append(f"<p class='note'>No analysis in {e(str(root / 'analyze'))} (run <code>selfdistill analyze --out "
                   f"{e(str(root / 'analyze'))}</code>).</p>")
    out += ["<h2>Training</h2>", f"<p>{e(_loss_line(data['loss']))}</p>",
            f"<img alt='training loss' src='{figs['loss']}'>" if "loss" in figs else "",
            "<h2>Sampling statistics</h2>", _table(["SSD data", "value"], _data_rows(data["data"]), "data"),
            "<div class='figs'>", f"<img alt='response lengths' src='{figs['lengths']}'>",
            f"<img alt='verdicts' src='{figs['verdicts']}'>", "</div>",
            "<h2>Responses side by side</h2>",
            _examples(base_rows, ssd_rows, config.examples, config.max_response_chars),
            "</body></html>"]
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
        stage.finish(["report.json", "report.md", "report.html"], {"provenance": data["provenance"]})
    return {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
