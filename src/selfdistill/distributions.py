"""The decoding distribution, exactly: temperature, then top-k, top-p and min-p, in that
order (generation.TRANSFORM_ORDER), on rows of logits sorted in descending order.

Used where the distribution itself is the object of study (`toy`, `analyze`), so both
compute what a sampler draws from with the same semantics as the engines:
- temperature 0 is greedy: all mass on the most likely token;
- top-k keeps the k most likely tokens (0 = off);
- top-p keeps the smallest prefix of the sorted tokens whose mass reaches p (the token that
  crosses p is kept; 1.0 = off), measured after temperature and top-k;
- min-p keeps tokens whose probability is at least min_p times the largest (0 = off).
Temperature never reorders tokens, so one sort serves every temperature.
"""

from __future__ import annotations

import torch


def decoded(sorted_logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
            min_p: float) -> torch.Tensor:
    """Probabilities (same shape, same sorted order) a sampler with these settings draws from."""
    _check(temperature, top_k, top_p, min_p)
    if temperature == 0:
        probs = torch.zeros_like(sorted_logits)
        probs[..., 0] = 1.0
        return probs
    logits = sorted_logits / temperature
    return torch.softmax(logits.masked_fill(~_support(logits, top_k, top_p, min_p), float("-inf")), dim=-1)


def support(sorted_logits: torch.Tensor, top_k: int, top_p: float, min_p: float) -> torch.Tensor:
    """Which tokens of rows of (temperature-scaled) logits, sorted in descending order,
    survive top-k, then top-p, then min-p: a boolean mask of the same shape. The vLLM engine
    applies its truncation through this function (generation/vllm_truncation.py)."""
    _check(1.0, top_k, top_p, min_p)
    return _support(sorted_logits, top_k, top_p, min_p)


def _support(sorted_logits: torch.Tensor, top_k: int, top_p: float, min_p: float) -> torch.Tensor:
    vocab = sorted_logits.shape[-1]
    keep = torch.ones_like(sorted_logits, dtype=torch.bool)
    if 0 < top_k < vocab:
        keep[..., top_k:] = False
    if top_p < 1.0:
        probs = torch.softmax(sorted_logits.masked_fill(~keep, float("-inf")), dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass strictly ahead of each token
        keep &= before < top_p
    if min_p > 0.0:
        # p_i >= min_p * p_max, whatever the normalisation: a bound on the logit
        keep &= sorted_logits >= sorted_logits[..., :1] + torch.log(torch.tensor(min_p))
    return keep


def _check(temperature: float, top_k: int, top_p: float, min_p: float) -> None:
    if temperature < 0 or top_k < 0 or not 0 < top_p <= 1 or not 0 <= min_p < 1:
        raise ValueError("temperature >= 0, top_k >= 0, 0 < top_p <= 1, 0 <= min_p < 1")


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats of each row (0 log 0 = 0)."""
    return -(probs * torch.log(probs.clamp_min(1e-30))).where(probs > 0, torch.zeros_like(probs)).sum(-1)
