"""`selfdistill toy`: SSD's mechanism computed exactly on a small lock/fork language.

    selfdistill toy --out runs/toy
    selfdistill toy --t-train 0.6 --out runs/toy-cold      # when SSD does not help

The language. A response is one root **fork** (several viable branches, each right for some
of the problems, plus a tail of distractor tokens that are always wrong) followed by
`locks` **lock** positions (one correct token holding `lock_mass`, the rest spread over a
Zipf-shaped distractor tail; a distractor is a failure). A problem is solved by a response
that takes the problem's branch at the fork and the correct token at every lock. Across
problems the right branch is branch j with probability fork_probs[j] / sum(fork_probs):
the base model is calibrated, so sharpening the fork cannot help on average, and the only
way to do better over k tries is to explore it.

Everything is closed form, without sampling noise:
- decoding at (T, top-k, top-p, min-p) is `distributions.decoded` applied at each position;
- SSD samples at T_train with the sampling truncation and fits those samples exactly (the
  fixed point of SFT on unlimited data), so the SSD model's next-token distribution at each
  position IS the base model's decoded distribution at T_train;
- a sample solves problem j with s_j = q_fork[j] * q_lock^locks, and pass@k over problems is
  sum_j pi_j (1 - (1 - s_j)^k).

It writes toy.json (settings, curves, best settings) and toy.png/svg, and prints the best
T_eval of each model. With one temperature the base model must choose between waking lock
tails (high T) and not exploring the fork (low T); SSD removes the lock tails at T_train, so
a high T_eval explores the fork safely. Without truncation SSD is only a change of temperature
(the SSD model at T_eval is the base model at T_train * T_eval) and cannot beat the base model's
best temperature; pass@1 of a calibrated fork is best greedy, where the two models agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from selfdistill.config import provenance, to_dict
from selfdistill.distributions import decoded
from selfdistill.files import atomic_write_text
from selfdistill.generation import Truncation


def _parts(t: Truncation) -> tuple[int, float, float]:
    return t.top_k, t.top_p, t.min_p


@dataclass
class ToyConfig:
    """The toy language, SSD's sampling settings and the evaluation grid; all stated in toy.json."""

    out: str | None = field(default=None, metadata={"help": "output directory (toy.json, toy.png/svg)"})
    fork_probs: list[float] = field(default_factory=lambda: [0.4, 0.2, 0.12, 0.08, 0.06, 0.04], metadata={
        "help": "base probabilities of the viable branches at the fork; the rest is its distractor tail"})
    fork_tail_size: int = field(default=40, metadata={"help": "distractor tokens at the fork"})
    locks: int = field(default=10, metadata={"help": "lock positions after the fork"})
    lock_mass: float = field(default=0.97, metadata={"help": "probability of the correct token at a lock"})
    lock_tail_size: int = field(default=200, metadata={"help": "distractor tokens at a lock"})
    tail_decay: float = field(default=1.0, metadata={"help": "Zipf exponent of distractor tails"})
    t_train: float = field(default=1.6, metadata={"help": "SSD sampling temperature"})
    train_truncation: Truncation = field(default_factory=lambda: Truncation(top_k=20, top_p=0.8, min_p=0.0),
                                         metadata={"help": "SSD sampling truncation (top_k, top_p, min_p)"})
    eval_truncation: Truncation = field(default_factory=lambda: Truncation(top_k=0, top_p=0.95, min_p=0.0),
                                        metadata={"help": "evaluation truncation of both models"})
    t_eval: list[float] = field(default_factory=lambda: [round(0.1 * i, 2) for i in range(0, 31)],
                                metadata={"help": "evaluation temperatures"})
    k: list[int] = field(default_factory=lambda: [1, 5, 10], metadata={"help": "pass@k values"})

    def __post_init__(self) -> None:
        if not self.fork_probs or min(self.fork_probs) <= 0 or sum(self.fork_probs) > 1 + 1e-9:
            raise ValueError("fork_probs must be positive and sum to at most 1")
        if not 0 < self.lock_mass <= 1:
            raise ValueError("lock_mass must be in (0, 1]")
        if self.locks < 0 or self.fork_tail_size < 0 or self.lock_tail_size < 0:
            raise ValueError("locks and tail sizes must be >= 0")
        if not self.t_eval or min(self.t_eval) < 0 or not self.k or min(self.k) < 1:
            raise ValueError("t_eval needs temperatures >= 0 and k values >= 1")
        if sorted(self.fork_probs, reverse=True) != list(self.fork_probs):
            raise ValueError("fork_probs must be in descending order")
        fork_tail = _tail(1 - sum(self.fork_probs), self.fork_tail_size, self.tail_decay)
        lock_tail = _tail(1 - self.lock_mass, self.lock_tail_size, self.tail_decay)
        if (fork_tail and fork_tail[0] >= self.fork_probs[-1]) or (lock_tail and lock_tail[0] >= self.lock_mass):
            raise ValueError("a distractor may not outrank a viable token (more tail tokens or less tail mass)")


def _tail(mass: float, size: int, decay: float) -> list[float]:
    if size == 0 or mass <= 0:
        return []
    weights = [1.0 / (r + 1) ** decay for r in range(size)]
    return [mass * w / sum(weights) for w in weights]


def positions(config: ToyConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The base model's fork and lock distributions as sorted log-probabilities; the
    fork's first len(fork_probs) entries are the branches, a lock's first is correct
    (ToyConfig checks that no distractor outranks them)."""
    branches = list(config.fork_probs)
    fork_tail = _tail(1 - sum(branches), config.fork_tail_size, config.tail_decay)
    lock_tail = _tail(1 - config.lock_mass, config.lock_tail_size, config.tail_decay)
    fork = torch.tensor(branches + fork_tail, dtype=torch.float64).log()
    lock = torch.tensor([config.lock_mass] + lock_tail, dtype=torch.float64).log()
    return fork, lock


def _decode(logp: torch.Tensor, t: float, k: int, p: float, m: float) -> torch.Tensor:
    return decoded(logp.unsqueeze(0), t, k, p, m)[0]


def pass_curves(fork: torch.Tensor, lock: torch.Tensor, prior: torch.Tensor, config: ToyConfig
                ) -> dict[str, list[float]]:
    """pass@k against config.t_eval for the model whose positions are `fork` and `lock`
    (log-probabilities; -inf where the model gives no mass), decoded with the eval truncation."""
    curves: dict[str, list[float]] = {f"pass@{k}": [] for k in config.k}
    for t in config.t_eval:
        qf = _decode(fork, t, *_parts(config.eval_truncation))
        ql = _decode(lock, t, *_parts(config.eval_truncation))
        s = qf[: len(prior)] * ql[0] ** config.locks  # success of one sample, per right branch
        for k in config.k:
            curves[f"pass@{k}"].append(float((prior * (1 - (1 - s) ** k)).sum()))
    return curves


def run_toy(config: ToyConfig) -> dict[str, Any]:
    """The `toy` stage's entry point: curves, best settings and the verdict; writes files if out."""
    fork, lock = positions(config)
    prior = torch.tensor(config.fork_probs, dtype=torch.float64)
    prior = prior / prior.sum()
    # SSD's fixed point: the base model's sampling distribution at T_train, refit exactly
    ssd_fork = _decode(fork, config.t_train, *_parts(config.train_truncation)).log()
    ssd_lock = _decode(lock, config.t_train, *_parts(config.train_truncation)).log()
    models = {"base": pass_curves(fork, lock, prior, config),
              "ssd": pass_curves(ssd_fork, ssd_lock, prior, config)}
    best: dict[str, dict[str, Any]] = {}
    for metric in models["base"]:
        row = {}
        for name, curves in models.items():
            i = max(range(len(config.t_eval)), key=lambda j: curves[metric][j])
            row[name] = {"t_eval": config.t_eval[i], "value": curves[metric][i]}
        row["ssd_minus_base"] = row["ssd"]["value"] - row["base"]["value"]
        best[metric] = row
    mass = {"base": {"fork_viable": float(fork.exp()[: len(prior)].sum()), "lock_correct": config.lock_mass},
            "ssd": {"fork_viable": float(ssd_fork.exp()[: len(prior)].sum()),
                    "lock_correct": float(ssd_lock.exp()[0]),
                    "fork_branches": [float(x) for x in ssd_fork.exp()[: len(prior)]]}}
    result = {"stage": "toy", "config": to_dict(config), "t_eval": config.t_eval, "curves": models,
              "best": best, "mass": mass, "provenance": provenance()}
    if config.out:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "toy.json", json.dumps(result, indent=1))
        plot(result, out / "toy")
    return result


def plot(result: dict[str, Any], stem: Path) -> list[Path]:
    from selfdistill.plots import pyplot, save

    plt = pyplot()
    metrics = list(result["best"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, style in (("base", "-"), ("ssd", "--")):
            ax.plot(result["t_eval"], result["curves"][name][metric], style, label=name)
            b = result["best"][metric][name]
            ax.plot([b["t_eval"]], [b["value"]], "o", color=ax.lines[-1].get_color())
        ax.set_xlabel("T_eval")
        ax.set_title(metric)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success probability")
    axes[0][0].legend()
    c = result["config"]
    tt, te = c["train_truncation"], c["eval_truncation"]
    fig.suptitle(f"toy: T_train {c['t_train']}, sampling top-k {tt['top_k'] or 'off'} / top-p "
                 f"{tt['top_p']}; eval top-k {te['top_k'] or 'off'} / top-p {te['top_p']}",
                 fontsize=9)
    return save(fig, stem)


def format_toy(result: dict[str, Any]) -> str:
    m = result["mass"]
    lines = [f"lock: correct token {m['base']['lock_correct']:.3f} -> {m['ssd']['lock_correct']:.3f} after SSD; "
             f"fork: viable mass {m['base']['fork_viable']:.3f} -> {m['ssd']['fork_viable']:.3f}",
             f"{'metric':<8} {'base best (T)':>16} {'SSD best (T)':>16} {'SSD - base':>11}"]
    for metric, row in result["best"].items():
        lines.append(f"{metric:<8} {100 * row['base']['value']:>9.1f}% ({row['base']['t_eval']:.1f}) "
                     f"{100 * row['ssd']['value']:>9.1f}% ({row['ssd']['t_eval']:.1f}) "
                     f"{100 * row['ssd_minus_base']:>+10.1f}")
    return "\n".join(lines)
