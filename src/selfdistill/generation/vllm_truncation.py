"""The vLLM engine's truncation: top-k, then top-p, then min-p, exactly as
`distributions.support` defines them, applied by a vLLM logits processor.

vLLM's own sampler is handed top-k, top-p and min-p switched off and only samples (Gumbel-max
on CPU) from what this processor leaves. Two reasons:
- order: vLLM v1 applies min-p before top-k/top-p (its sampler's docstring), and min-p does
  not commute with top-p, so the paper's order (temperature, top-k, top-p, min-p) could not
  be had from its own settings;
- speed: with top-p on, vLLM's CPU path sorts the whole vocabulary of every row at every
  step (151,936 logits for Qwen); with top-k on this processor sorts only the k largest
  (`torch.topk`), and with top-k off it sorts everything, as vLLM would.
It runs where vLLM runs argmax-invariant processors: after the temperature and before
sampling. Each request carries its settings in `SamplingParams.extra_args[KEY]`; a request
without them (greedy, or no truncation) is left alone. Loaded by vLLM from
`selfdistill.generation.vllm_truncation:TruncationProcessor`, so it imports vLLM at import.
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from selfdistill.distributions import support
from selfdistill.generation import Truncation

KEY = "selfdistill_truncation"
FQCN = "selfdistill.generation.vllm_truncation:TruncationProcessor"
ORDER = ("top_k", "top_p", "min_p")
OFF = (0, 1.0, 0.0)  # each of ORDER switched off


def settings(params) -> tuple[int, float, float] | None:
    """(top_k, top_p, min_p) a request asks this processor for, or None."""
    extra = (params.extra_args or {}).get(KEY)
    if extra is None:
        return None
    return int(extra["top_k"]), float(extra["top_p"]), float(extra["min_p"])


class TruncationProcessor(LogitsProcessor):
    """Top-k, top-p and min-p on temperature-scaled logits, per request."""

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        truncation = settings(sampling_params)
        if truncation is None:
            return
        Truncation(*truncation)  # the one validation of top-k, top-p and min-p (ValueError)
        if (sampling_params.top_k not in (0, -1) or sampling_params.top_p != 1.0
                or sampling_params.min_p != 0.0):
            raise ValueError(f"{KEY} replaces vLLM's own top_k/top_p/min_p, which must be off")

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool) -> None:
        self.rows: dict[int, tuple[int, float, float]] = {}

    def is_argmax_invariant(self) -> bool:
        return True  # truncation never removes the most likely token

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if not batch_update:
            return
        for index in batch_update.removed:
            self.rows.pop(index, None)
        for index, params, _, _ in batch_update.added:
            truncation = settings(params)
            if truncation is None:
                self.rows.pop(index, None)
            else:
                self.rows[index] = truncation
        for a, b, direction in batch_update.moved:
            row_a, row_b = self.rows.pop(a, None), self.rows.pop(b, None)
            if row_a is not None:
                self.rows[b] = row_a
            if direction == MoveDirectionality.SWAP and row_b is not None:
                self.rows[a] = row_b

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        groups: dict[tuple[int, float, float], list[int]] = {}
        for index, truncation in self.rows.items():
            if index < logits.shape[0]:
                groups.setdefault(truncation, []).append(index)
        if len(groups) == 1:
            (truncation, indices), = groups.items()
            if len(indices) == logits.shape[0]:  # the usual batch: every row, one setting
                return _truncate(logits, *truncation)
        for truncation, indices in groups.items():
            rows = torch.tensor(indices, device=logits.device)
            logits.index_copy_(0, rows, _truncate(logits.index_select(0, rows), *truncation))
        return logits


def _truncate(x: torch.Tensor, top_k: int, top_p: float, min_p: float) -> torch.Tensor:
    """Rows of logits with every token outside the support set to -inf."""
    vocab = x.shape[-1]
    values, order = x.topk(top_k if 0 < top_k < vocab else vocab, dim=-1)  # candidates, descending
    kept = support(values, 0, top_p, min_p)  # top-k is the candidate cut itself
    return torch.full_like(x, float("-inf")).scatter_(1, order, values.masked_fill(~kept, float("-inf")))
