"""Generation backends: one interface, first implementation transformers.

`DecodingConfig` holds every parameter that shapes the sampling distribution; none has a
default, so each run states them all, and they are written beside every output.
Transforms apply in the paper's order: temperature, then top-k, then top-p, then min-p
(transformers builds its warpers in exactly this order). temperature 0 means greedy.

Determinism: work is cut into fixed batches (item i always lands in batch i // batch_size)
and each batch is seeded from (seed, batch index), so a resumed run regenerates exactly
what an uninterrupted run would have, on the same backend, hardware and batch size.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from selfdistill.models import ModelRef, load_model, load_tokenizer, resolve_model


@dataclass
class DecodingConfig:
    """Every decoding parameter, explicit. top_k 0, top_p 1.0 and min_p 0.0 mean 'off'."""

    temperature: float = field(metadata={"help": "sampling temperature (0 = greedy)"})
    top_k: int = field(metadata={"help": "keep the k most likely tokens (0 = off)"})
    top_p: float = field(metadata={"help": "nucleus mass (1.0 = off)"})
    min_p: float = field(metadata={"help": "min-p relative threshold (0.0 = off)"})
    max_tokens: int = field(metadata={"help": "maximum new tokens per response"})
    n: int = field(metadata={"help": "responses per problem"})
    seed: int = field(metadata={"help": "base seed; batch seeds derive from it"})

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0 (0 = off)")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if not 0 <= self.min_p < 1:
            raise ValueError("min_p must be in [0, 1)")
        if self.max_tokens <= 0 or self.n <= 0:
            raise ValueError("max_tokens and n must be positive")


@dataclass
class Generation:
    """One response with what produced it."""

    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int


class GenerationBackend(Protocol):
    """What a backend does: render chat prompts and sample one response per prompt."""

    def generate(
        self, prompts: list[list[dict[str, str]]], decoding: DecodingConfig, seed: int
    ) -> list[Generation]: ...

    def describe(self) -> dict[str, Any]: ...


def batch_seed(seed: int, batch_index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{batch_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class TransformersBackend:
    """Batched `generate` with left padding; the model's own generation_config is ignored
    (a hub model may ship top_k or repetition_penalty we would otherwise apply unseen)."""

    def __init__(self, ref: ModelRef, dtype: str = "bfloat16"):
        self.ref = ref
        self.dtype = dtype
        self.tokenizer = load_tokenizer(ref)
        self.model = load_model(ref, dtype).eval()
        self.eos_ids = self._eos_ids()

    @classmethod
    def from_spec(cls, spec: str, dtype: str = "bfloat16") -> TransformersBackend:
        return cls(resolve_model(spec), dtype)

    def _eos_ids(self) -> list[int]:
        ids = set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (gen_eos, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(value)
        return sorted(ids)

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        return {
            "backend": "transformers",
            "model": self.ref.describe(),
            "dtype": self.dtype,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "eos_token_ids": self.eos_ids,
            "transform_order": ["temperature", "top_k", "top_p", "min_p"],
        }

    def render(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(
        self, prompts: list[list[dict[str, str]]], decoding: DecodingConfig, seed: int
    ) -> list[Generation]:
        import torch
        from transformers import GenerationConfig

        texts = [self.render(m) for m in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                             add_special_tokens=False)
        sample = decoding.temperature > 0
        config = GenerationConfig(
            do_sample=sample,
            temperature=decoding.temperature if sample else None,
            top_k=(decoding.top_k or None) if sample else None,
            top_p=decoding.top_p if sample else None,
            min_p=(decoding.min_p or None) if sample else None,
            max_new_tokens=decoding.max_tokens,
            eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(**enc, generation_config=config)
        width = enc["input_ids"].shape[1]
        results = []
        for row, mask in zip(out, enc["attention_mask"]):
            new = row[width:].tolist()
            stop = next((i for i, t in enumerate(new) if t in self.eos_ids), None)
            body = new if stop is None else new[:stop]
            results.append(
                Generation(
                    text=self.tokenizer.decode(body, skip_special_tokens=True),
                    finish_reason="length" if stop is None else "stop",
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=len(body) + (0 if stop is None else 1),
                )
            )
        return results


BACKENDS = {"transformers": TransformersBackend}


def make_backend(name: str, model: str, dtype: str) -> GenerationBackend:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose from {sorted(BACKENDS)}")
    return BACKENDS[name].from_spec(model, dtype)


def decoding_record(decoding: DecodingConfig) -> dict[str, Any]:
    return asdict(decoding)
