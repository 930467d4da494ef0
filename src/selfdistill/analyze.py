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

Every position a response's tokens were sampled at is included, the end-of-turn token of
a response that stopped (not one cut at max_tokens) too: SSD trains on it, and where a
response ends is part of what SSD reshapes. In `run` the responses are both models'
own, from the cells the best-against-best comparison scored (RUN/compare/responses.jsonl),
so neither model's greedy favourites alone decide the positions.

Positions are classified, and binned by top-20 mass, by the BASE model's distribution, so
both models are compared on the same positions, with thresholds stated in the output:
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

Noise: every diagnostic carries a bootstrap 95% interval over responses (responses
resampled with replacement, the statistic recomputed as a ratio of sums), and each SSD -
base difference a paired one (the same resampled responses for both models), so a
difference is shown to lie inside or outside the noise of the responses measured.
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
from selfdistill.generation import Truncation
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
    truncation: Truncation = field(metadata={"help": "evaluation truncation of the diagnostics (top_k, top_p, min_p)"})
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
    bootstrap_samples: int = field(default=2000, metadata={"help": "bootstrap resamples of the responses"})
    bootstrap_seed: int = field(default=0, metadata={"help": "bootstrap seed"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | auto"})
    device: str = field(default="auto", metadata={"help": "auto (cuda where a GPU is visible, else cpu), cpu, cuda"})
    batch_size: int = field(default=1, metadata={
        "help": "responses per forward pass (right-padded; more fills a GPU, 1 computes no padding on a CPU)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if not self.t_eval or min(self.t_eval) <= 0 or self.binned_t_eval <= 0:
            raise ValueError("t_eval and binned_t_eval must be positive temperatures")
        if not 0 < self.fork_top1 < self.lock_top1 <= 1 or not 0 < self.fork_top20 <= 1:
            raise ValueError("thresholds must satisfy 0 < fork_top1 < lock_top1 <= 1, 0 < fork_top20 <= 1")
        if self.chunk_positions <= 0 or self.bootstrap_samples <= 0 or self.batch_size <= 0:
            raise ValueError("chunk_positions, bootstrap_samples and batch_size must be positive")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError("device must be auto, cpu or cuda")


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


SCALARS = {"top1": "top1_mass", "entropy": "entropy", "top20": "top20_mass", "tail": "tail_mass_beyond_support"}
VECTORS = {"cum_mass": "cumulative_mass_by_rank", "surviving": "surviving_tokens",
           "entropy_trunc": "entropy_after_truncation"}


class _Sums:
    """One model's per-response, per-class sums of every statistic, and the binned
    diagnostic's per-response sums over all positions (binned by the base model)."""

    def __init__(self, n_t: int):
        self.n_t = n_t
        self.rows: list[dict[str, Any]] = []

    def add(self, stats: dict[str, Any], classes: dict[str, Any], bins: Any) -> None:
        """Statistics of all positions of one response."""
        import numpy as np

        row: dict[str, Any] = {"count": np.zeros(len(CLASSES))}
        for key in (*SCALARS, *VECTORS):
            width = stats[key].shape[1] if stats[key].dim() == 2 else 1
            row[key] = np.zeros((len(CLASSES), width))
        for i, cls in enumerate(CLASSES):
            mask = classes[cls]
            row["count"][i] = int(mask.sum())
            for key in (*SCALARS, *VECTORS):
                v = stats[key][mask].double()
                row[key][i] = (v.sum(0) if v.dim() == 2 else v.sum().reshape(1)).numpy()
        row["bin_count"] = bins.bincount(minlength=TOP20_BINS).double().numpy()
        row["bin_entropy"] = torch_index_sum(stats["binned_entropy"], bins)
        self.rows.append(row)

    def stacked(self) -> dict[str, Any]:
        import numpy as np

        return {k: np.stack([r[k] for r in self.rows]) for k in self.rows[0]}


def torch_index_sum(values: Any, bins: Any) -> Any:
    import torch

    out = torch.zeros(TOP20_BINS, dtype=torch.float64)
    out.index_add_(0, bins, values.double())
    return out.numpy()


def _ratios(st: dict[str, Any], w: Any) -> dict[str, Any]:
    """Every diagnostic as a ratio of sums over responses weighted by w ([B, R] bootstrap
    counts, or [1, R] ones): per class [B, C, D] arrays and the binned one [B, bins]."""
    import numpy as np

    count = np.einsum("br,rc->bc", w, st["count"])[:, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {k: np.einsum("br,rcd->bcd", w, st[k]) / count for k in (*SCALARS, *VECTORS)}
        out["binned"] = np.einsum("br,rd->bd", w, st["bin_entropy"]) / np.einsum("br,rd->bd", w, st["bin_count"])
    return out


def _interval(samples: Any) -> tuple[Any, Any]:
    import warnings

    import numpy as np

    with warnings.catch_warnings():  # a bin no position falls in: NaN, reported as None
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(samples, 2.5, axis=0), np.nanpercentile(samples, 97.5, axis=0)


def _clean(x: Any) -> Any:
    """numpy -> JSON: NaN (no positions) -> None, one-element rows -> scalars."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    if x.shape == (1,):
        x = x[0]
    if x.ndim == 0:
        return None if np.isnan(x) else float(x)
    return [_clean(v) for v in x]


def summarise(sums: dict[str, _Sums], samples: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per model and class: every diagnostic with its bootstrap 95% interval over
    responses; per class: SSD - base with a paired interval (same resamples)."""
    import numpy as np

    stacked = {m: s.stacked() for m, s in sums.items()}
    n_resp = len(next(iter(sums.values())).rows)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n_resp, np.full(n_resp, 1 / n_resp), size=samples).astype(float)
    ones = np.ones((1, n_resp))
    point = {m: _ratios(st, ones) for m, st in stacked.items()}
    boot = {m: _ratios(st, w) for m, st in stacked.items()}
    diagnostics: dict[str, Any] = {}
    for m, st in stacked.items():
        diagnostics[m] = {}
        for i, cls in enumerate(CLASSES):
            positions = int(st["count"][:, i].sum())
            if positions == 0:
                diagnostics[m][cls] = {"positions": 0}
                continue
            entry: dict[str, Any] = {"positions": positions, "responses": int((st["count"][:, i] > 0).sum())}
            intervals = {}
            for key, name in {**SCALARS, **VECTORS}.items():
                entry[name] = _clean(point[m][key][0, i])
                lo, hi = _interval(boot[m][key][:, i])
                intervals[name] = [_clean(lo), _clean(hi)]
            entry["interval"] = intervals
            diagnostics[m][cls] = entry
        lo, hi = _interval(boot[m]["binned"])
        diagnostics[m]["all"] = {"positions": int(st["count"].sum()),
                                 "entropy_after_truncation_by_base_top20_mass": _clean(point[m]["binned"][0]),
                                 "interval": [_clean(lo), _clean(hi)],
                                 "positions_by_base_top20_mass": [int(k) for k in st["bin_count"].sum(0)]}
    differences: dict[str, Any] = {}
    if set(stacked) == {"base", "ssd"}:
        for i, cls in enumerate(CLASSES):
            if not diagnostics["base"][cls]["positions"]:
                continue
            differences[cls] = {}
            for key, name in {**SCALARS, **VECTORS}.items():
                delta = point["ssd"][key][0, i] - point["base"][key][0, i]
                lo, hi = _interval(boot["ssd"][key][:, i] - boot["base"][key][:, i])
                differences[cls][name] = {"delta": _clean(delta), "low": _clean(lo), "high": _clean(hi)}
    return diagnostics, differences


def position_stats(logits: Any, config: AnalyzeConfig) -> dict[str, Any]:
    """Statistics of rows of next-token logits [N, V] (float32 on the CPU)."""
    import torch

    from selfdistill.distributions import decoded, entropy

    logits = logits.float()
    log_z = torch.logsumexp(logits, dim=-1, keepdim=True)
    full_probs = torch.exp(logits - log_z)
    stats = {"entropy": entropy(full_probs)}
    tr = config.truncation
    keep = max(tr.top_k, RANKS) if tr.top_k else logits.shape[-1]
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
    at_one = decoded(top, 1.0, tr.top_k, tr.top_p, tr.min_p)
    stats["tail"] = 1 - (top_probs * (at_one > 0)).sum(-1)
    surviving, ent = [], []
    for t in config.t_eval:
        q = decoded(top, t, tr.top_k, tr.top_p, tr.min_p)
        surviving.append((q > 0).sum(-1).double())
        ent.append(entropy(q))
    stats["surviving"] = torch.stack(surviving, dim=-1)
    stats["entropy_trunc"] = torch.stack(ent, dim=-1)
    stats["binned_entropy"] = entropy(decoded(top, config.binned_t_eval, tr.top_k, tr.top_p, tr.min_p))
    return stats


def top20_bin(stats: dict[str, Any]) -> Any:
    import torch

    return torch.clamp((stats["top20"] * TOP20_BINS).long(), max=TOP20_BINS - 1)


def _classify(stats: dict[str, Any], config: AnalyzeConfig) -> dict[str, Any]:
    lock = stats["top1"] >= config.lock_top1
    fork = (stats["top1"] <= config.fork_top1) & (stats["top20"] >= config.fork_top20)
    return {"lock": lock, "fork": fork, "other": ~(lock | fork)}


def _load(spec: str, dtype: str, device: str) -> tuple[Any, Any, dict[str, Any]]:
    from selfdistill.generation import resolve_device, resolve_dtype
    from selfdistill.models import fingerprint, load_model, load_tokenizer, resolve_model

    ref = resolve_model(spec)
    device, device_why = resolve_device(device)
    resolved, why = resolve_dtype(dtype, device)
    model = load_model(ref, resolved).to(device).eval()
    return model, load_tokenizer(ref), {"spec": spec, "content": fingerprint(ref), "dtype": resolved,
                                        "dtype_reason": why, "device": device, "device_reason": device_why}


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The token the chat template closes an assistant turn with (what the model emits to
    stop, and what SFT trains on): the first token the template writes after a reply."""
    probe = [{"role": "user", "content": "x"}]
    prompt = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(probe + [{"role": "assistant", "content": "y"}], tokenize=False)
    if full.startswith(prompt + "y"):
        ids = tokenizer(full[len(prompt) + 1:], add_special_tokens=False)["input_ids"]
        if ids and ids[0] in tokenizer.all_special_ids:
            return ids[0]
    return tokenizer.eos_token_id


def tokenized(tokenizer: Any, rows: list[dict[str, Any]], max_tokens: int | None) -> list[tuple[list[int], int]]:
    """(prompt + response ids, number of prompt ids) per row, with the model's chat
    template; a response that stopped (finish_reason not "length") ends with the
    end-of-turn token, unless max_tokens cut it first."""
    from selfdistill.prompts import render_chat

    eot = end_of_turn_id(tokenizer)
    out = []
    for row in rows:
        prompt = tokenizer(render_chat(tokenizer, row["prompt"]), add_special_tokens=False)["input_ids"]
        response = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
        if eot is not None and row.get("finish_reason") != "length":
            response = response + [eot]
        out.append((prompt + response[:max_tokens], len(prompt)))
    return out


def response_stats(model: Any, ids: list[int], n_prompt: int, config: AnalyzeConfig) -> dict[str, Any] | None:
    """The statistics of every response position of one sequence (the positions whose
    next token is a response token), computed chunk by chunk from one forward pass that
    keeps logits only there."""
    import torch

    n_resp = len(ids) - n_prompt
    if n_resp <= 0:
        return None
    with torch.inference_mode():
        logits = model(torch.tensor([ids], device=model.device), logits_to_keep=n_resp + 1).logits[0, :-1]
        return _chunked_stats(logits, config)


def _chunked_stats(rows: Any, config: AnalyzeConfig, head: Any = None) -> dict[str, Any]:
    """position_stats over `rows` (logits, or hidden states that `head` turns into logits
    chunk by chunk, so no [positions, vocabulary] tensor is made), joined on the CPU."""
    import torch

    chunks = []
    for start in range(0, rows.shape[0], config.chunk_positions):
        part = rows[start:start + config.chunk_positions]
        chunks.append(position_stats(part if head is None else head(part), config))
    return {k: torch.cat([c[k] for c in chunks]).cpu() for k in chunks[0]}


def batch_stats(model: Any, seqs: list[tuple[list[int], int]], config: AnalyzeConfig) -> list[dict[str, Any]]:
    """`response_stats` of several sequences from one forward pass: right-padded (a causal
    model's positions never see the padding after them), the decoder run once, the LM
    head applied only at each row's response positions. The same statistics as one
    sequence at a time (tested), for filling a GPU."""
    import torch

    width = max(len(ids) for ids, _ in seqs)
    pad = 0
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in seqs], device=model.device)
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in seqs], device=model.device)
    with torch.inference_mode():
        hidden = model.get_decoder()(input_ids=input_ids, attention_mask=mask).last_hidden_state
        head = model.get_output_embeddings()
        return [_chunked_stats(hidden[row, n_prompt - 1:len(ids) - 1], config, head)
                for row, (ids, n_prompt) in enumerate(seqs)]


def analyze(config: AnalyzeConfig) -> dict[str, Any]:
    """The `analyze` stage's entry point: writes analyze.json and the plots; returns the record."""
    from collections import Counter

    from tqdm.auto import tqdm

    rows = read_responses(Path(config.samples), config.limit)
    out = Path(config.out)
    models, speed, sums = {}, {}, {}
    base_model, base_tok, models["base"] = _load(config.base, config.dtype, config.device)
    seqs = tokenized(base_tok, rows, config.max_response_tokens)
    keep = [i for i, (ids, n_prompt) in enumerate(seqs) if len(ids) > n_prompt]
    classes: dict[int, tuple[dict[str, Any], Any]] = {}  # by the base model, per response
    for name in ("base", "ssd"):
        if name == "ssd":
            del base_model
            model, tok, models["ssd"] = _load(config.ssd, config.dtype, config.device)
            if tok.get_vocab() != base_tok.get_vocab():
                raise SelfdistillError("the base and SSD models have different vocabularies; "
                                       "positions cannot be compared")
        else:
            model = base_model
        sums[name] = _Sums(len(config.t_eval))
        start = time.monotonic()
        bar = tqdm(total=len(keep), desc=f"analyze {name}", unit="resp", disable=not config.progress)
        for first in range(0, len(keep), config.batch_size):
            batch = keep[first:first + config.batch_size]
            if len(batch) == 1:
                got = [response_stats(model, *seqs[batch[0]], config)]
            else:
                got = batch_stats(model, [seqs[i] for i in batch], config)
            for i, stats in zip(batch, got):
                if name == "base":
                    classes[i] = (_classify(stats, config), top20_bin(stats))
                sums[name].add(stats, *classes[i])
            bar.update(len(batch))
        bar.close()
        elapsed = time.monotonic() - start
        positions = sum(len(seqs[i][0]) - seqs[i][1] for i in keep)
        speed[name] = {"positions": positions, "seconds": round(elapsed, 2),
                       "positions_per_s": round(positions / elapsed, 1) if elapsed else None}
        del model
    if not keep:
        raise SelfdistillError(f"{config.samples}: no response has a token to analyse")
    diagnostics, differences = summarise(sums, config.bootstrap_samples, config.bootstrap_seed)
    record = {"stage": "analyze", "config": to_dict(config), "responses": len(keep),
              "responses_by_source": dict(Counter(str(rows[i].get("source", "given")) for i in keep)),
              "thresholds": {"lock": f"base top-1 mass >= {config.lock_top1}",
                             "fork": f"base top-1 mass <= {config.fork_top1} and top-20 mass >= {config.fork_top20}",
                             "other": "neither"},
              "noise": f"95% bootstrap intervals over the {len(keep)} responses ({config.bootstrap_samples} "
                       "resamples); SSD - base differences paired on the same resamples",
              "models": models, "speed": speed, "diagnostics": diagnostics, "differences": differences,
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
    """The paper's four diagnostics, base vs SSD, for locks and forks, each with its
    bootstrap 95% band over responses."""
    from selfdistill.plots import pyplot, save

    plt = pyplot()
    d, cfg = record["diagnostics"], record["config"]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    bins = record["top20_bins"]
    centres = [(a + b) / 2 for a, b in zip(bins, bins[1:])]
    nan = float("nan")
    fill = lambda v: [nan if x is None else x for x in v]  # noqa: E731
    for row, cls in enumerate(("lock", "fork")):
        for name, style in (("base", "-"), ("ssd", "--")):
            s = d[name][cls]
            if not s["positions"]:
                continue
            label = f"{name} ({s['positions']} positions)"
            for ax, xs, key in ((axes[row][0], list(range(1, RANKS + 1)), "cumulative_mass_by_rank"),
                                (axes[row][1], cfg["t_eval"], "surviving_tokens"),
                                (axes[row][2], cfg["t_eval"], "entropy_after_truncation")):
                line, = ax.plot(xs, s[key], style, label=label)
                lo, hi = s["interval"][key]
                ax.fill_between(xs, fill(lo), fill(hi), color=line.get_color(), alpha=0.2)
        titles = ("cumulative mass by rank", "tokens surviving truncation", "entropy after truncation (nats)")
        for ax, title, xl in zip(axes[row], titles, ("token rank", "T_eval", "T_eval")):
            ax.set_title(f"{cls}s: {title}", fontsize=10)
            ax.set_xlabel(xl)
            ax.grid(alpha=0.3)
        if axes[row][0].lines:
            axes[row][0].legend(fontsize=8)
        else:
            axes[row][0].text(0.5, 0.5, f"no {cls} positions", ha="center", transform=axes[row][0].transAxes)
    # the binned diagnostic spans every position, binned by the BASE model's top-20 mass
    for name, style in (("base", "-"), ("ssd", "--")):
        a = d[name]["all"]
        ys = fill(a["entropy_after_truncation_by_base_top20_mass"])
        line, = axes[0][3].plot(centres, ys, style + "o", label=name)
        axes[0][3].fill_between(centres, fill(a["interval"][0]), fill(a["interval"][1]),
                                color=line.get_color(), alpha=0.2)
    axes[1][3].bar(centres, d["base"]["all"]["positions_by_base_top20_mass"], width=0.08, color="grey")
    axes[0][3].set_title(f"all positions: entropy after truncation at T={cfg['binned_t_eval']}", fontsize=10)
    axes[1][3].set_title("all positions: how many per base top-20 mass bin", fontsize=10)
    for ax in (axes[0][3], axes[1][3]):
        ax.set_xlabel("base top-20 mass")
        ax.grid(alpha=0.3)
    axes[0][3].legend(fontsize=8)
    t = cfg["truncation"]
    fig.suptitle(f"lock/fork diagnostics over {record['responses']} responses, 95% bootstrap bands; truncation "
                 f"top-k {t['top_k'] or 'off'}, top-p {t['top_p']}, min-p {t['min_p'] or 'off'}", fontsize=10)
    fig.tight_layout()
    return save(fig, stem)


def _with_interval(value: float, interval: list[Any], digits: int) -> str:
    lo, hi = interval
    return f"{value:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def format_difference(diff: dict[str, Any], digits: int = 4) -> str:
    return (f"{diff['delta']:+.{digits}f} [{diff['low']:+.{digits}f}, {diff['high']:+.{digits}f}]"
            + ("" if diff["low"] <= 0 <= diff["high"] else " (outside the noise)"))


def format_analysis(record: dict[str, Any]) -> str:
    lines = [f"{record['responses']} responses; " + "; ".join(
        f"{n}: {s['positions']} positions at {s['positions_per_s']}/s" for n, s in record["speed"].items())]
    lines.append(f"{'class':<6} {'positions':>9} {'model':<5} {'top-1 [95%]':>22} {'tail beyond support [95%]':>27}")
    for cls in CLASSES:
        for name in ("base", "ssd"):
            s = record["diagnostics"][name][cls]
            if not s["positions"]:
                lines.append(f"{cls:<6} {0:>9} {name:<5}")
                continue
            lines.append(f"{cls:<6} {s['positions']:>9} {name:<5} "
                         f"{_with_interval(s['top1_mass'], s['interval']['top1_mass'], 3):>22} "
                         f"{_with_interval(s['tail_mass_beyond_support'], s['interval']['tail_mass_beyond_support'], 4):>27}")
        diff = record["differences"].get(cls, {}).get("tail_mass_beyond_support")
        if diff:
            lines.append(f"{cls:<6} SSD - base tail beyond support: {format_difference(diff)}")
    lines.append("thresholds: " + "; ".join(f"{k}: {v}" for k, v in record["thresholds"].items()))
    lines.append(record["noise"])
    return "\n".join(lines)
