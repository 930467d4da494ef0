"""`selfdistill report RUN_DIR`: report.md and report.html for a run. report.md: base vs SSD pass@k with paired bootstrap 95% intervals, per-problem
win/loss counts and an exact sign test (metrics.py).

The interval of a difference resamples problems with replacement (the same problems for
both models, hence paired) and takes the 2.5th and 97.5th percentiles of the mean
per-problem difference in pass@k. Where neither model solved a problem of a subset, the
subset says "no solved problems" instead of a degenerate interval.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.config import provenance
from selfdistill.errors import SelfdistillError
from selfdistill.files import atomic_write_text, read_jsonl
from selfdistill.metrics import format_interval, ks_for, paired_comparison, subsets


def compare(base: dict[str, Any], ssd: dict[str, Any], samples: int, seed: int) -> list[dict[str, Any]]:
    """Rows (subset, k, base, ssd, delta, low, high, wins, losses, ties, sign_test_p) over
    the problems both runs judged."""
    s = {p["task_id"]: p for p in ssd["problems"]}
    common = [p for p in base["problems"] if p["task_id"] in s]
    if not common:
        raise ValueError("the two runs share no problems")
    n_min = min(min(p["n"] for p in common), min(s[p["task_id"]]["n"] for p in common))
    rows = []
    for name, group in subsets(common).items():
        other = [s[p["task_id"]] for p in group]
        for k in ks_for(n_min):
            row = paired_comparison(group, other, k, samples, seed)
            row["base"], row["ssd"] = row.pop("a"), row.pop("b")
            rows.append({"subset": name, **row})
    return rows


def _decoding(d: Any) -> str:
    return (f"T={d.temperature}, top-k={d.top_k or 'off'}, top-p={d.top_p}, min-p={d.min_p or 'off'}, "
            f"max_tokens={d.max_tokens}, n={d.n}, seed={d.seed}")


def write_report(root: Path, config: Any, base: dict[str, Any], ssd: dict[str, Any],
                 data: dict[str, Any], loss: list[dict[str, Any]], prov: dict[str, Any],
                 report_config: ReportConfig | None = None) -> Path:
    """report.md, report.json and report.html (write_html) of a run; returns report.md's path."""
    rows = compare(base, ssd, config.bootstrap_samples, config.bootstrap_seed)
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [
        f"# SSD report: {config.model}",
        "",
        f"- benchmark: `{config.eval_problems}`" + (f" (first {config.eval_limit})" if config.eval_limit else ""),
        f"- SSD prompts: `{config.train_problems}`" + (f" (first {config.train_limit})" if config.train_limit else ""),
        f"- sampling (T_train): {_decoding(config.sample_decoding)}; filter `{config.sample_filter}`",
        f"- base eval: {_decoding(config.base_decoding)}",
        f"- SSD eval: {_decoding(config.ssd_decoding)}",
        f"- training: {json.dumps(config.training)}",
        f"- date {prov['date']}, git {prov['git_revision']}",
        "",
        "## pass@k, base vs SSD",
        "",
        "Percent; the difference with its paired bootstrap 95% interval over problems; wins/losses:",
        "problems where SSD's pass@k is higher/lower; p: two-sided exact sign test on them.",
        "",
        "| subset | problems | k | base | SSD | diff [95% interval] | wins/losses/ties | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['subset']} | {r['problems']} | {r['k']} | {pct(r['base'])} | {pct(r['ssd'])} | "
                     f"{format_interval(r)} | {r['wins']}/{r['losses']}/{r['ties']} | "
                     f"{r['sign_test_p']:.3g} |")
    lines += [
        "",
        "## SSD data (from `sample`)",
        "",
        f"- responses: {data['generated']}, kept for training: {data['kept']} (filter `{data['filter']}`)",
        f"- with extractable code: {pct(data['with_code_share'])}%; empty: {pct(data['empty_share'])}%; "
        f"truncated at max_tokens: {pct(data['truncated_share'])}%",
        f"- completion tokens: median {data['completion_tokens']['median']:.0f}, "
        f"p90 {data['completion_tokens']['p90']:.0f}, max {data['completion_tokens']['max']:.0f}",
        "",
        "## Training",
        "",
        f"- optimiser steps: {loss[-1]['step'] if loss else 0}; loss first {loss[0]['loss']:.4f}, "
        f"last {loss[-1]['loss']:.4f} (curve: train/loss.png)" if loss else "- no loss logged",
        "",
        "Artifacts: base_eval/, sample/, train/, ssd_eval/ (each with its config and provenance).",
        "",
    ]
    path = root / "report.md"
    atomic_write_text(path, "\n".join(lines))
    atomic_write_text(root / "report.json", json.dumps({"comparison": rows, "data": data}, indent=1))
    write_html(root, config, base, ssd, rows, data, loss, report_config or ReportConfig(run_dir=str(root)))
    return path


# --- `selfdistill report RUN_DIR`: report.md and one self-contained report.html ---------


@dataclass
class ReportConfig:
    """Write report.md and report.html for a finished run directory."""

    run_dir: str = field(metadata={"help": "a `selfdistill run` directory"})
    sweep_dir: str | None = field(default=None, metadata={"help": "a sweep's output (default RUN/sweep if present)"})
    analyze_dir: str | None = field(default=None, metadata={
        "help": "an analyze output (default RUN/analyze if present)"})
    examples: int = field(default=4, metadata={"help": "problems shown with base and SSD responses side by side"})
    max_response_chars: int = field(default=4000, metadata={"help": "longer responses are cut, saying so"})


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise SelfdistillError(f"{path}: missing ({what}); is this a finished run directory?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SelfdistillError(f"{path}: malformed JSON ({e.msg})") from None


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


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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


def write_html(root: Path, config: Any, base: dict[str, Any], ssd: dict[str, Any], rows: list[dict[str, Any]],
               summary: dict[str, Any], loss: list[dict[str, Any]], report_config: ReportConfig) -> Path:
    """report.html: one file, images inlined, no scripts and no network."""
    sample_rows = _rows(root / "sample" / "generations.jsonl")
    base_rows, ssd_rows = _rows(root / "base_eval" / "samples.jsonl"), _rows(root / "ssd_eval" / "samples.jsonl")
    lengths = {"SSD data": [r["completion_tokens"] for r in sample_rows if "completion_tokens" in r],
               "base eval": [r["completion_tokens"] for r in base_rows if "completion_tokens" in r],
               "SSD eval": [r["completion_tokens"] for r in ssd_rows if "completion_tokens" in r]}
    verdicts = {"base": Counter(r["result"]["status"] for r in base_rows if "result" in r),
                "SSD": Counter(r["result"]["status"] for r in ssd_rows if "result" in r)}
    figs = _figures(loss, lengths, verdicts)
    prov = ssd["config"].get("provenance", {})
    e = html.escape
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>SSD report: {e(config.model)}</title>"
           f"<style>{_CSS}</style></head><body>",
           f"<h1>SSD report: {e(config.model)}</h1>",
           "<h2>Configuration and provenance</h2>",
           _table(["setting", "value"], [
               ["benchmark", f"{config.eval_problems}" + (f" (first {config.eval_limit})" if config.eval_limit else "")],
               ["SSD prompts", f"{config.train_problems}" + (f" (first {config.train_limit})" if config.train_limit else "")],
               ["sampling (T_train)", _decoding(config.sample_decoding)], ["filter", config.sample_filter],
               ["base eval", _decoding(config.base_decoding)], ["SSD eval", _decoding(config.ssd_decoding)],
               ["engine", json.dumps(config.engine.output_settings())],
               ["training", json.dumps(config.training)],
               ["date", prov.get("date")], ["git", prov.get("git_revision")], ["cpu", prov.get("cpu")],
               ["versions", ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items() if v)]]),
           "<h2>pass@k by difficulty</h2>"]
    for name, res in (("base", base), ("SSD", ssd)):
        header, body = _metrics_rows(res["metrics"])
        out += [f"<h3>{name}</h3>", _table(header, body)]
    out += ["<h2>Base vs SSD</h2><p class='note'>Difference in percentage points with its paired bootstrap 95% "
            "interval over problems; wins/losses: problems where SSD's pass@k is higher/lower; p: exact sign test.</p>",
            _table(["subset", "problems", "k", "base (%)", "SSD (%)", "diff [95% interval]", "wins/losses/ties", "p"],
                   [[r["subset"], r["problems"], r["k"], f"{100 * r['base']:.1f}", f"{100 * r['ssd']:.1f}",
                     format_interval(r), f"{r['wins']}/{r['losses']}/{r['ties']}", f"{r['sign_test_p']:.3g}"]
                    for r in rows])]
    sweep_dir = Path(report_config.sweep_dir) if report_config.sweep_dir else root / "sweep"
    out.append("<h2>Temperature sweep</h2>")
    if (sweep_dir / "sweep.json").is_file():
        sw = _load_json(sweep_dir / "sweep.json", "sweep")
        out.append(f"<p class='note'>{e(sw['selection_caveat'])}.</p>")
        out.append(_table(["model", "best T_eval", f"{sw['config']['select_metric']} on selection (%)",
                           f"on {sw['report_problems']} reported problems (%)"],
                          [[n, b["t_eval"], f"{100 * b['selection_score']:.1f}",
                            f"{100 * b['report'][sw['config']['select_metric']]:.1f}"] for n, b in sw["best"].items()]))
        out.append(_table(["model - reference", "k", "diff [95% interval]", "wins/losses", "p"],
                          [[f"{c['model']} (T {c['model_t_eval']:g}) - {c['reference']} (T {c['reference_t_eval']:g})",
                            c["k"], format_interval(c), f"{c['wins']}/{c['losses']}", f"{c['sign_test_p']:.3g}"]
                           for c in sw["comparisons"]]))
        for stem in ("sweep", "grid"):
            uri = _file_png(sweep_dir / f"{stem}.png")
            if uri:
                out.append(f"<img alt='{stem}' src='{uri}'>")
    else:
        out.append(f"<p class='note'>No sweep in {e(str(sweep_dir))} (run <code>selfdistill sweep --out "
                   f"{e(str(sweep_dir))}</code>).</p>")
    analyze_dir = Path(report_config.analyze_dir) if report_config.analyze_dir else root / "analyze"
    out.append("<h2>Lock/fork diagnostics</h2>")
    if (analyze_dir / "analyze.json").is_file():
        an = _load_json(analyze_dir / "analyze.json", "analyze")
        out.append("<p class='note'>" + e("; ".join(f"{k}: {v}" for k, v in an["thresholds"].items())) + "</p>")
        out.append(_table(["class", "model", "positions", "top-1 mass", "entropy", "tail beyond support"],
                          [[c, n, s["positions"], *(f"{s[k]:.3f}" for k in ("top1_mass", "entropy",
                                                                              "tail_mass_beyond_support"))]
                           for c in ("lock", "fork", "other") for n, d in an["diagnostics"].items()
                           for s in [d[c]] if s["positions"]]))
        uri = _file_png(analyze_dir / "analyze.png")
        if uri:
            out.append(f"<img alt='lock/fork diagnostics' src='{uri}'>")
    else:
        out.append(f"<p class='note'>No analysis in {e(str(analyze_dir))} (run <code>selfdistill analyze --out "
                   f"{e(str(analyze_dir))}</code>).</p>")
    out += ["<h2>Training</h2>",
            f"<img alt='training loss' src='{figs['loss']}'>" if "loss" in figs else "<p>No loss logged.</p>",
            "<h2>Sampling statistics</h2>",
            _table(["SSD data", "value"], [
                ["responses", summary["generated"]], ["kept for training", summary["kept"]],
                ["with extractable code", f"{100 * summary['with_code_share']:.1f}%"],
                ["no code", f"{100 * (1 - summary['with_code_share']):.1f}%"],
                ["truncated at max_tokens", f"{100 * summary['truncated_share']:.1f}%"],
                ["median completion tokens", f"{summary['completion_tokens']['median']:.0f}"]]),
            "<div class='figs'>", f"<img alt='response lengths' src='{figs['lengths']}'>",
            f"<img alt='verdicts' src='{figs['verdicts']}'>", "</div>",
            "<h2>Responses side by side</h2>",
            _examples(base_rows, ssd_rows, report_config.examples, report_config.max_response_chars),
            "</body></html>"]
    path = root / "report.html"
    atomic_write_text(path, "\n".join(out))
    return path


def report(config: ReportConfig) -> dict[str, Path]:
    """The `report` stage's entry point: report.md and report.html from a run directory."""
    import yaml

    from selfdistill.config import build
    from selfdistill.pipeline import RunConfig

    root = Path(config.run_dir)
    resolved_path = root / "config.resolved.yaml"
    if not resolved_path.is_file():
        raise SelfdistillError(f"{root}: no config.resolved.yaml; not a `selfdistill run` directory")
    resolved = yaml.safe_load(resolved_path.read_text())
    resolved.pop("training_resolved", None)
    run_config = build(RunConfig, resolved, where=str(resolved_path))
    base = _load_json(root / "base_eval" / "results.json", "base evaluation")
    ssd = _load_json(root / "ssd_eval" / "results.json", "SSD evaluation")
    data = _load_json(root / "sample" / "summary.json", "SSD data")["summary"]
    loss = _load_json(root / "train" / "loss.json", "training loss")
    md = write_report(root, run_config, base, ssd, data, loss, ssd["config"].get("provenance", provenance()), config)
    return {"md": md, "html": root / "report.html"}
