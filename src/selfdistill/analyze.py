"""`selfdistill analyze`: where SSD reshapes the model's distributions, measured on responses.

    selfdistill analyze --samples runs/cpu-demo/ssd_eval/samples.jsonl \
        --base qwen2.5-coder-0.5b --ssd runs/cpu-demo/train/model \
        --top-k 20 --top-p 0.8 --min-p 0 --out runs/cpu-demo/analyze

A fixed set of responses (any JSONL with chat `prompt` messages and a `completion`, e.g. an
evaluation's samples.jsonl) is teacher-forced through both models. At every response
position each model's next-token distribution gives: top-1 mass, entropy, mass of the top
20, tail mass beyond the truncated support (at T=1 with the configured top-k/top-p/min-p),
and, over a grid of T_eval, the number of tokens surviving truncation and the entropy after
truncation (`distributions.decoded`, the sampler's exact distribution).

Positions are classified by the BASE model's distribution, so both models are compared on
the same positions, with thresholds stated in the output:
- lock: top-1 mass >= lock_top1 (one token holds nearly all the mass);
- fork: top-1 mass <= fork_top1 and top-20 mass >= fork_top20 (several plausible
  continuations, not a flat spread);
- other: everything else.
The paper gives no thresholds; ours are configurable and recorded.

Memory: only per-position statistics are kept, accumulated into per-class sums; logits
are computed for response positions only, in chunks of `chunk_positions` rows, and
when top-k is on only the top max(top_k, 60) logits of a row are kept after the exact
normaliser is taken. Outputs: analyze.json (settings, provenance, per model and class the
four diagnostics) and analyze.png/svg; it reports positions per second.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.config import provenance, to_dict
from selfdistill.errors import SelfdistillError, located
from selfdistill.files import atomic_write_text, read_jsonl, sha256_file
from selfdistill.records import StageKey, open_stage

RANKS = 60
CLASSES = ("lock", "fork", "other")
TOP20_BINS = 10  # top-20 mass bins of width 0.1


@dataclass
class AnalyzeConfig:
    """Teacher-force responses through the base and SSD models; lock/fork diagnostics."""

    samples: str = field(metadata={"help": "JSONL rows with prompt (chat messages) and completion"})
    base: str = field(metadata={"help": "base model (bundled name, .gguf, directory, hub id)"})
    ssd: str = field(metadata={"help": "SSD model (e.g. RUN/train/model)"})
    out: str = field(metadata={"help": "output directory"})
    top_k: int = field(metadata={"help": "evaluation top-k of the diagnostics (0 = off)"})
    top_p: float = field(metadata={"help": "evaluation top-p (1.0 = off)"})
    min_p: float = field(metadata={"help": "evaluation min-p (0.0 = off)"})
    t_eval: list[float] = field(default_factory=lambda: [round(0.4 + 0.1 * i, 2) for i in range(17)],
                                metadata={"help": "T_eval grid of the truncation diagnostics"})
    binned_t_eval: float = field(default=1.0, metadata={
        "help": "T_eval of the entropy-after-truncation-by-top-20-mass diagnostic"})
    lock_top1: float = field(default=0.9, metadata={"help": "lock: base top-1 mass at least this"})
    fork_top1: float = field(default=0.5, metadata={"help": "fork: base top-1 mass at most this"})
    fork_top20: float = field(default=0.8, metadata={"help": "fork: base top-20 mass at least this"})
    limit: int | None = field(default=None, metadata={"help": "only the first N responses"})
    max_response_tokens: int | None = field(default=None, metadata={
        "help": "only the first N tokens of each response"})
    chunk_positions: int = field(default=256, metadata={"help": "positions per statistics chunk"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | auto"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if self.top_k < 0 or not 0 < self.top_p <= 1 or not 0 <= self.min_p < 1:
            raise ValueError("top_k >= 0, 0 < top_p <= 1, 0 <= min_p < 1")
        if not self.t_eval or min(self.t_eval) <= 0 or self.binned_t_eval <= 0:
            raise ValueError("t_eval and binned_t_eval must be positive temperatures")
        if not 0 < self.fork_top1 < self.lock_top1 <= 1 or not 0 < self.fork_top20 <= 1:
            raise ValueError("thresholds must satisfy 0 < fork_top1 < lock_top1 <= 1, 0 < fork_top20 <= 1")
        if self.chunk_positions <= 0:
            raise ValueError("chunk_positions must be positive")


def read_responses(path: Path, limit: int | None) -> list[dict[str, Any]]:
    rows = []
    for lineno, row in read_jsonl(path, "samples"):
        if not isinstance(row.get("prompt"), list) or not isinstance(row.get("completion"), str):
            raise located(path, lineno, "each row needs prompt (chat messages) and completion (a string)")
        rows.append(row)
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise SelfdistillError(f"{path}: no responses")
    return rows


class _Accumulator:
    """Per-class sums of every statistic, for one model."""

    def __init__(self, n_t: int):
        import torch

        z = lambda *s: torch.zeros(*s, dtype=torch.float64)  # noqa: E731
        self.count = {c: 0 for c in CLASSES}
        self.sums = {c: {"top1": z(()), "entropy": z(()), "top20": z(()), "tail": z(()),
                         "cum_mass": z(RANKS), "surviving": z(n_t), "entropy_trunc": z(n_t),
                         "bin_entropy": z(TOP20_BINS), "bin_count": z(TOP20_BINS)} for c in CLASSES}

    def add(self, cls: str, mask: Any, stats: dict[str, Any]) -> None:
        n = int(mask.sum())
        if n == 0:
            return
        self.count[cls] += n
        s = self.sums[cls]
        for key in ("top1", "entropy", "top20", "tail"):
            s[key] += stats[key][mask].double().sum()
        for key in ("cum_mass", "surviving", "entropy_trunc"):
            s[key] += stats[key][mask].double().sum(0)
        bins = stats["bin"][mask]
        s["bin_entropy"].index_add_(0, bins, stats["binned_entropy"][mask].double())
        s["bin_count"] += bins.bincount(minlength=TOP20_BINS).double()

    def summary(self) -> dict[str, Any]:
        out = {}
        for c in CLASSES:
            n, s = self.count[c], self.sums[c]
            if n == 0:
                out[c] = {"positions": 0}
                continue
            mean = lambda t, n=n: (t / n).tolist()  # noqa: E731
            out[c] = {"positions": n, "top1_mass": mean(s["top1"]), "entropy": mean(s["entropy"]),
                      "top20_mass": mean(s["top20"]), "tail_mass_beyond_support": mean(s["tail"]),
                      "cumulative_mass_by_rank": mean(s["cum_mass"]),
                      "surviving_tokens": mean(s["surviving"]), "entropy_after_truncation": mean(s["entropy_trunc"]),
                      "entropy_after_truncation_by_top20_mass": [
                          (e / k).item() if k > 0 else None for e, k in zip(s["bin_entropy"], s["bin_count"])],
                      "positions_by_top20_mass": [int(k) for k in s["bin_count"]]}
        return out


def position_stats(logits: Any, config: AnalyzeConfig) -> dict[str, Any]:
    """Statistics of rows of next-token logits [N, V] (float32 on the CPU)."""
    import torch

    from selfdistill.distributions import decoded, entropy

    logits = logits.float()
    log_z = torch.logsumexp(logits, dim=-1, keepdim=True)
    full_probs = torch.exp(logits - log_z)
    stats = {"entropy": entropy(full_probs)}
    keep = max(config.top_k, RANKS) if config.top_k else logits.shape[-1]
    top, _ = torch.topk(logits, min(keep, logits.shape[-1]), dim=-1)  # sorted, descending
    del full_probs
    top_probs = torch.exp(top - log_z)
    cum = torch.cumsum(top_probs[:, :RANKS], dim=-1)
    if cum.shape[-1] < RANKS:  # a vocabulary smaller than 60
        cum = torch.cat([cum, cum[:, -1:].expand(-1, RANKS - cum.shape[-1])], dim=-1)
    stats["cum_mass"] = cum
    stats["top1"] = top_probs[:, 0]
    stats["top20"] = cum[:, 19]
    # with top-k on, what survives lies in the top k, and the sampler renormalises there:
    # the kept rows give the exact distribution
    at_one = decoded(top, 1.0, config.top_k, config.top_p, config.min_p)
    stats["tail"] = 1 - (top_probs * (at_one > 0)).sum(-1)
    surviving, ent = [], []
    for t in config.t_eval:
        q = decoded(top, t, config.top_k, config.top_p, config.min_p)
        surviving.append((q > 0).sum(-1).double())
        ent.append(entropy(q))
    stats["surviving"] = torch.stack(surviving, dim=-1)
    stats["entropy_trunc"] = torch.stack(ent, dim=-1)
    stats["binned_entropy"] = entropy(decoded(top, config.binned_t_eval, config.top_k, config.top_p, config.min_p))
    stats["bin"] = torch.clamp((stats["top20"] * TOP20_BINS).long(), max=TOP20_BINS - 1)
    return stats


def _classify(stats: dict[str, Any], config: AnalyzeConfig) -> dict[str, Any]:
    lock = stats["top1"] >= config.lock_top1
    fork = (stats["top1"] <= config.fork_top1) & (stats["top20"] >= config.fork_top20)
    return {"lock": lock, "fork": fork, "other": ~(lock | fork)}


def _load(spec: str, dtype: str) -> tuple[Any, Any, dict[str, Any]]:
    from selfdistill.generation import resolve_dtype
    from selfdistill.models import fingerprint, load_model, load_tokenizer, resolve_model

    ref = resolve_model(spec)
    resolved, why = resolve_dtype(dtype)
    model = load_model(ref, resolved).eval()
    return model, load_tokenizer(ref), {"spec": spec, "content": fingerprint(ref), "dtype": resolved,
                                        "dtype_reason": why}


def tokenized(tokenizer: Any, rows: list[dict[str, Any]], max_tokens: int | None) -> list[tuple[list[int], int]]:
    """(prompt + response ids, number of prompt ids) per row, with the model's chat template."""
    from selfdistill.prompts import render_chat

    out = []
    for row in rows:
        prompt = tokenizer(render_chat(tokenizer, row["prompt"]), add_special_tokens=False)["input_ids"]
        response = tokenizer(row["completion"], add_special_tokens=False)["input_ids"][:max_tokens]
        out.append((prompt + response, len(prompt)))
    return out


def _forward(model: Any, ids: list[int], n_prompt: int, config: AnalyzeConfig, classes_by_chunk: list,
             acc: _Accumulator, is_base: bool) -> None:
    """Statistics of one response's positions, chunk by chunk; the base model's pass
    records each chunk's classes, which the SSD model's pass then uses."""
    import torch

    n_resp = len(ids) - n_prompt
    if n_resp <= 0:
        return
    with torch.inference_mode():
        # logits only at the positions that predict response tokens
        logits = model(torch.tensor([ids]), logits_to_keep=n_resp + 1).logits[0, :-1]
        for c, start in enumerate(range(0, n_resp, config.chunk_positions)):
            stats = position_stats(logits[start:start + config.chunk_positions], config)
            if is_base:
                classes_by_chunk.append(_classify(stats, config))
            for cls, mask in classes_by_chunk[c].items():
                acc.add(cls, mask, stats)


def analyze(config: AnalyzeConfig) -> dict[str, Any]:
    """The `analyze` stage's entry point: writes analyze.json and the plots; returns the record."""
    from tqdm.auto import tqdm

    rows = read_responses(Path(config.samples), config.limit)
    out = Path(config.out)
    models, results, speed = {}, {}, {}
    base_model, base_tok, models["base"] = _load(config.base, config.dtype)
    seqs = tokenized(base_tok, rows, config.max_response_tokens)
    classes: list[list] = [[] for _ in seqs]
    for name in ("base", "ssd"):
        if name == "ssd":
            del base_model
            model, tok, models["ssd"] = _load(config.ssd, config.dtype)
            if tok.get_vocab() != base_tok.get_vocab():
                raise SelfdistillError("the base and SSD models have different vocabularies; "
                                       "positions cannot be compared")
        else:
            model = base_model
        acc = _Accumulator(len(config.t_eval))
        start = time.monotonic()
        for (ids, n_prompt), chunks in tqdm(list(zip(seqs, classes)), desc=f"analyze {name}",
                                            unit="resp", disable=not config.progress):
            _forward(model, ids, n_prompt, config, chunks, acc, is_base=name == "base")
        elapsed = time.monotonic() - start
        positions = sum(acc.count.values())
        speed[name] = {"positions": positions, "seconds": round(elapsed, 2),
                       "positions_per_s": round(positions / elapsed, 1) if elapsed else None}
        results[name] = acc.summary()
        del model
    record = {"stage": "analyze", "config": to_dict(config), "responses": len(rows),
              "thresholds": {"lock": f"base top-1 mass >= {config.lock_top1}",
                             "fork": f"base top-1 mass <= {config.fork_top1} and top-20 mass >= {config.fork_top20}",
                             "other": "neither"},
              "models": models, "speed": speed, "diagnostics": results,
              "top20_bins": [round(i / TOP20_BINS, 2) for i in range(TOP20_BINS + 1)],
              "provenance": provenance()}
    with open_stage(out, stage_key(config), derived=True) as stage:
        atomic_write_text(out / "analyze.json", json.dumps(record, indent=1))
        plot(record, out / "analyze")
        stage.finish(["analyze.json"], {"provenance": record["provenance"]})
    return record


def stage_key(config: AnalyzeConfig) -> StageKey:
    """The analyze stage's record key: its settings, the responses and both models by content."""
    from selfdistill.models import fingerprint, resolve_model

    settings = {k: v for k, v in to_dict(config).items() if k not in ("samples", "base", "ssd", "out", "progress")}
    return StageKey("analyze", settings, {"samples": "sha256:" + sha256_file(Path(config.samples)),
                                          "base": fingerprint(resolve_model(config.base)),
                                          "ssd": fingerprint(resolve_model(config.ssd))})


def plot(record: dict[str, Any], stem: Path) -> list[Path]:
    """The paper's four diagnostics, base vs SSD, for locks and forks."""
    from selfdistill.plots import pyplot, save

    plt = pyplot()
    d, cfg = record["diagnostics"], record["config"]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    bins = record["top20_bins"]
    centres = [(a + b) / 2 for a, b in zip(bins, bins[1:])]
    for row, cls in enumerate(("lock", "fork")):
        for name, style in (("base", "-"), ("ssd", "--")):
            s = d[name][cls]
            if not s["positions"]:
                continue
            label = f"{name} ({s['positions']} positions)"
            axes[row][0].plot(range(1, RANKS + 1), s["cumulative_mass_by_rank"], style, label=label)
            axes[row][1].plot(cfg["t_eval"], s["surviving_tokens"], style, label=label)
            axes[row][2].plot(cfg["t_eval"], s["entropy_after_truncation"], style, label=label)
        titles = ("cumulative mass by rank", "tokens surviving truncation", "entropy after truncation (nats)")
        for ax, title, xl in zip(axes[row], titles, ("token rank", "T_eval", "T_eval")):
            ax.set_title(f"{cls}s: {title}", fontsize=10)
            ax.set_xlabel(xl)
            ax.grid(alpha=0.3)
        if axes[row][0].lines:
            axes[row][0].legend(fontsize=8)
        else:
            axes[row][0].text(0.5, 0.5, f"no {cls} positions", ha="center", transform=axes[row][0].transAxes)
    # the binned diagnostic spans every position, locks, forks and the rest together
    for name, style in (("base", "-"), ("ssd", "--")):
        sums, counts = [0.0] * (len(bins) - 1), [0] * (len(bins) - 1)
        for cls in CLASSES:
            s = d[name][cls]
            for i, (e, k) in enumerate(zip(s.get("entropy_after_truncation_by_top20_mass", []),
                                           s.get("positions_by_top20_mass", []))):
                if e is not None:
                    sums[i] += e * k
                    counts[i] += k
        pts = [(c, t / k) for c, t, k in zip(centres, sums, counts) if k]
        axes[0][3].plot([q[0] for q in pts], [q[1] for q in pts], style + "o", label=name)
        if name == "base":
            axes[1][3].bar(centres, counts, width=0.08, color="grey")
    axes[0][3].set_title(f"all positions: entropy after truncation at T={cfg['binned_t_eval']}", fontsize=10)
    axes[1][3].set_title("all positions: how many per top-20 mass bin", fontsize=10)
    for ax in (axes[0][3], axes[1][3]):
        ax.set_xlabel("base top-20 mass")
        ax.grid(alpha=0.3)
    axes[0][3].legend(fontsize=8)
    fig.suptitle(f"lock/fork diagnostics over {record['responses']} responses; truncation top-k "
                 f"{cfg['top_k'] or 'off'}, top-p {cfg['top_p']}, min-p {cfg['min_p'] or 'off'}", fontsize=10)
    fig.tight_layout()
    return save(fig, stem)


def format_analysis(record: dict[str, Any]) -> str:
    lines = [f"{record['responses']} responses; " + "; ".join(
        f"{n}: {s['positions']} positions at {s['positions_per_s']}/s" for n, s in record["speed"].items())]
    header = f"{'class':<6} {'positions':>9} {'model':<5} {'top-1':>6} {'entropy':>8} {'tail':>7} {'surv@T=1':>9}"
    lines.append(header)
    t_eval = record["config"]["t_eval"]
    i1 = min(range(len(t_eval)), key=lambda i: abs(t_eval[i] - 1.0))
    for cls in CLASSES:
        for name in ("base", "ssd"):
            s = record["diagnostics"][name][cls]
            if not s["positions"]:
                lines.append(f"{cls:<6} {0:>9} {name:<5}")
                continue
            lines.append(f"{cls:<6} {s['positions']:>9} {name:<5} {s['top1_mass']:>6.3f} {s['entropy']:>8.3f} "
                         f"{s['tail_mass_beyond_support']:>7.4f} {s['surviving_tokens'][i1]:>9.2f}")
    lines.append("thresholds: " + "; ".join(f"{k}: {v}" for k, v in record["thresholds"].items()))
    return "\n".join(lines)
