"""The transformers engine: batched `generate` with left padding, exactly the configured sampler.

transformers 5.x fills every field left unset in a `GenerationConfig` first from the
model's own `generation_config` (a hub model may ship top_k, repetition_penalty ...) and
then from library defaults (top_k 50). So the model's generation config is replaced by an
empty one at load time (what it shipped is recorded, not applied), every sampling field is
passed explicitly (top_k 0 for off, top_p 1.0, min_p None), and before each batch the
processors transformers will build are checked against the requested transforms: anything
else is an error, never a silent change of distribution.
"""

from __future__ import annotations

from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.generation import (
    DecodingConfig,
    EngineConfig,
    Generation,
    resolve_device,
    resolve_dtype,
    stop_token_ids,
)
from selfdistill.models import ModelRef, load_model, load_tokenizer, resolve_model

# transformers' warper class -> our transform name and the attribute holding its value
_WARPERS = {
    "TemperatureLogitsWarper": ("temperature", "temperature"),
    "TopKLogitsWarper": ("top_k", "top_k"),
    "TopPLogitsWarper": ("top_p", "top_p"),
    "MinPLogitsWarper": ("min_p", "min_p"),
}


class TransformersBackend:
    """Batched `generate`; the model's shipped generation defaults are ignored."""

    def __init__(self, ref: ModelRef, dtype: str = "auto", device: str = "auto"):
        from transformers import GenerationConfig

        self.ref = ref
        self.device, self.device_reason = resolve_device(device)
        self.dtype, self.dtype_reason = resolve_dtype(dtype, self.device)
        self.tokenizer = load_tokenizer(ref)
        self.model = load_model(ref, self.dtype).to(self.device).eval()
        self.eos_ids = stop_token_ids(self.tokenizer, self.model.generation_config.eos_token_id)
        shipped = self.model.generation_config.to_diff_dict()
        self.ignored_model_defaults = {k: v for k, v in shipped.items()
                                       if k not in ("transformers_version", "_from_model_config")}
        self.model.generation_config = GenerationConfig(eos_token_id=self.eos_ids,
                                                        pad_token_id=self.tokenizer.pad_token_id)

    @classmethod
    def from_spec(cls, spec: str, engine: EngineConfig) -> TransformersBackend:
        return cls(resolve_model(spec), engine.dtype, engine.device)

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        from selfdistill.config import cpu_name

        return {
            "backend": "transformers",
            "model": self.ref.describe(),
            "dtype": self.dtype,
            "dtype_reason": self.dtype_reason,
            "device": self.device,
            "device_reason": self.device_reason,
            "gpu": torch.cuda.get_device_name() if self.device == "cuda" else None,
            "cpu": cpu_name(),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "eos_token_ids": self.eos_ids,
            "ignored_model_generation_defaults": self.ignored_model_defaults,
        }

    def close(self) -> None:
        pass

    def generation_config(self, decoding: DecodingConfig):
        from transformers import GenerationConfig

        sample = not decoding.greedy
        return GenerationConfig(
            do_sample=sample,
            temperature=decoding.temperature if sample else 1.0,
            top_k=decoding.top_k if sample else 0,
            top_p=decoding.top_p if sample else 1.0,
            min_p=(decoding.min_p or None) if sample else None,
            max_new_tokens=decoding.max_tokens,
            eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def logits_processors(self, decoding: DecodingConfig):
        """The processor list `generate` builds for this decoding (the same calls it makes)."""
        config, _ = self.model._prepare_generation_config(self.generation_config(decoding))
        return self.model._get_logits_processor(generation_config=config, input_ids_seq_length=1,
                                                device=self.device, model_kwargs={})

    def effective_sampler(self, decoding: DecodingConfig) -> dict[str, Any]:
        """What `generate` really runs, read off the processors transformers builds; refuses
        any processor that was not asked for."""
        processors = self.logits_processors(decoding)
        transforms, unexpected = [], []
        for proc in processors:
            name, attr = _WARPERS.get(type(proc).__name__, (None, None))
            if name is None:
                unexpected.append(type(proc).__name__)
            else:
                value = getattr(proc, attr)
                transforms.append({"name": name, "value": value})
        if decoding.greedy:
            transforms = [{"name": "argmax"}] + transforms
        expected = decoding.active_transforms()
        if unexpected or [t["name"] for t in transforms] != [t["name"] for t in expected]:
            raise SelfdistillError(
                f"transformers would run {[type(p).__name__ for p in processors]} for {expected}; "
                "refusing to sample from a distribution other than the configured one")
        return {"engine": "transformers", "transforms": transforms,
                "processors": [type(p).__name__ for p in processors]}

    def render(self, messages: list[dict[str, str]]) -> str:
        from selfdistill.prompts import render_chat

        return render_chat(self.tokenizer, messages)

    def generate(
        self, prompts: list[list[dict[str, str]]], decoding: DecodingConfig, seeds: list[int]
    ) -> list[Generation]:
        import torch

        self.effective_sampler(decoding)
        texts = [self.render(m) for m in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                             add_special_tokens=False).to(self.device)
        torch.manual_seed(seeds[0])
        with torch.inference_mode():
            out = self.model.generate(**enc, generation_config=self.generation_config(decoding))
        width = enc["input_ids"].shape[1]
        from selfdistill.prompts import opens_thought

        results = []
        for row, mask, text in zip(out, enc["attention_mask"], texts):
            new = row[width:].tolist()
            stop = next((i for i, t in enumerate(new) if t in self.eos_ids), None)
            body = new if stop is None else new[:stop]
            results.append(
                Generation(
                    text=self.tokenizer.decode(body, skip_special_tokens=True),
                    finish_reason="length" if stop is None else "stop",
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=len(body) + (0 if stop is None else 1),
                    token_ids=new if stop is None else new[: stop + 1],
                    thought_open=opens_thought(text),
                )
            )
        return results
