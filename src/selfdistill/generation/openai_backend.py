"""The OpenAI-compatible server engine: vLLM's or SGLang's server, llama.cpp's, a hosted API.

    selfdistill sample --backend openai --base-url http://127.0.0.1:8000/v1 \
        --api-key-env MY_KEY --model served-model-name ...

Every decoding parameter is sent explicitly with each request, "off" values included
(top_k -1, top_p 1, min_p 0, repetition_penalty 1, presence/frequency penalties 0): a
server fills what a request leaves out from its own or the model's defaults (vLLM's server
applies generation_config.json), so leaving a field out would change the distribution
unseen. top_k, min_p and repetition_penalty are not in OpenAI's schema; they go as the
extra body fields that vLLM, SGLang and llama.cpp accept. A server that rejects one of them
(a hosted API, say) is refused with one clear error rather than asked without it.
The API key is read from the environment variable named by --api-key-env, never a flag.
Requests run `concurrency` at a time; the `openai` client retries 429, 5xx, timeouts and
refused connections with exponential backoff. Rows are written per batch like every
engine's, so a server that dies mid-run loses nothing already written: rerun to resume.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.generation import DecodingConfig, EngineConfig, Generation


class OpenAIBackend:
    """Chat or completions requests against an OpenAI-compatible server."""

    def __init__(self, model: str, engine: EngineConfig):
        try:
            import openai
        except ImportError:
            raise SelfdistillError("backend openai needs the `openai` package") from None
        key = "EMPTY"
        if engine.api_key_env:
            key = os.environ.get(engine.api_key_env, "")
            if not key:
                raise SelfdistillError(f"environment variable {engine.api_key_env} (the API key) is not set")
        self.model = model
        self.engine = engine
        self.openai = openai
        self.client = openai.OpenAI(base_url=engine.base_url, api_key=key,
                                    max_retries=engine.max_retries, timeout=engine.request_timeout_s)
        self.pool = ThreadPoolExecutor(max_workers=engine.concurrency)
        self.tokenizer = None
        if engine.endpoint == "completions" and not engine.tokenizer:
            raise SelfdistillError("endpoint completions renders the chat template here: "
                                   "give --tokenizer (a local model with the same template)")
        if engine.tokenizer:
            from selfdistill.models import load_tokenizer, resolve_model

            self.tokenizer = load_tokenizer(resolve_model(engine.tokenizer))

    @classmethod
    def from_spec(cls, spec: str, engine: EngineConfig) -> OpenAIBackend:
        return cls(spec, engine)

    def request_fields(self, decoding: DecodingConfig, seed: int) -> dict[str, Any]:
        """Exactly what each request carries (the effective sampler, as far as a client
        can know it)."""
        greedy = decoding.greedy
        return {
            "temperature": 0.0 if greedy else decoding.temperature,
            "top_p": 1.0 if greedy else decoding.top_p,
            "max_tokens": decoding.max_tokens,
            "n": 1,
            "seed": seed,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "extra_body": {
                "top_k": -1 if greedy or decoding.top_k == 0 else decoding.top_k,
                "min_p": 0.0 if greedy else decoding.min_p,
                "repetition_penalty": 1.0,
                "skip_special_tokens": True,
            },
        }

    def effective_sampler(self, decoding: DecodingConfig) -> dict[str, Any]:
        if not decoding.greedy and decoding.min_p > 0.0 and decoding.top_p < 1.0:
            # min-p does not commute with top-p, and a server applies its own order
            raise SelfdistillError(
                "backend openai: min_p > 0 with top_p < 1 is refused: the server applies its own order "
                "(a vLLM server applies min-p before top-p, not temperature, top-k, top-p, min-p); "
                "use --backend vllm or transformers, or turn one of them off")
        fields = self.request_fields(decoding, seed=0)
        fields.pop("seed")
        return {"engine": "openai", "transforms": decoding.active_transforms(),
                "request_fields": fields, "endpoint": self.engine.endpoint,
                "note": "sent with every request; the server's own sampler is not observable"}

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.engine.base_url, "model": self.model,
                "endpoint": self.engine.endpoint, "concurrency": self.engine.concurrency,
                "max_retries": self.engine.max_retries, "api_key_env": self.engine.api_key_env,
                "openai": self.openai.__version__}

    def _one(self, messages: list[dict[str, str]], decoding: DecodingConfig, seed: int) -> Generation:
        from selfdistill.prompts import opens_thought, render_chat

        fields = self.request_fields(decoding, seed)
        # the chat endpoint's server renders the prompt: whether it opened a thought is known
        # only where a local tokenizer renders the same template (a closing tag still tells)
        prompt = render_chat(self.tokenizer, messages) if self.tokenizer is not None else ""
        try:
            if self.engine.endpoint == "chat":
                resp = self.client.chat.completions.create(model=self.model, messages=messages, **fields)
                text = resp.choices[0].message.content or ""
            else:
                resp = self.client.completions.create(model=self.model, prompt=prompt, **fields)
                text = resp.choices[0].text or ""
        except self.openai.BadRequestError as e:
            raise SelfdistillError(
                f"{self.engine.base_url} refused the request ({e.message}); it cannot honour "
                "the configured sampler (top_k, min_p and repetition_penalty are sent explicitly)"
            ) from None
        except self.openai.APIError as e:
            raise SelfdistillError(f"{self.engine.base_url}: {type(e).__name__}: {e} "
                                   "(finished batches are on disk; rerun to resume)") from None
        choice = resp.choices[0]
        usage = resp.usage
        return Generation(text=text, finish_reason="length" if choice.finish_reason == "length" else "stop",
                          prompt_tokens=usage.prompt_tokens if usage else -1,
                          completion_tokens=usage.completion_tokens if usage else -1,
                          thought_open=opens_thought(prompt))

    def generate(
        self, prompts: list[list[dict[str, str]]], decoding: DecodingConfig, seeds: list[int]
    ) -> list[Generation]:
        futures = [self.pool.submit(self._one, m, decoding, s) for m, s in zip(prompts, seeds)]
        return [f.result() for f in futures]

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        self.client.close()
