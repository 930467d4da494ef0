"""Decoding means what it says: the sampler each engine really runs, checked three ways.

1. The processors transformers builds (and the SamplingParams vLLM receives) for every
   on/off combination, with a model that ships its own generation defaults.
2. The scores `generate` actually sampled from, compared with a reference implementation
   of temperature -> top-k -> top-p -> min-p applied to the raw logits.
3. Statistics of the output: at T=1.5 with top-k off, sampled tokens ranked beyond 50
   appear; with top-k 50 none do.
"""

import itertools
import json
import shutil

import pytest
import torch

from selfdistill.errors import SelfdistillError
from selfdistill.generation import DecodingConfig, EngineConfig, resolve_dtype
from selfdistill.generation.transformers_backend import TransformersBackend

SHIPPED = {"do_sample": True, "temperature": 0.6, "top_k": 7, "top_p": 0.5, "min_p": 0.2,
           "repetition_penalty": 1.3, "no_repeat_ngram_size": 2}
COMBOS = list(itertools.product((0.0, 1.0, 1.5), (0, 5), (1.0, 0.9), (0.0, 0.1)))
MSGS = [{"role": "user", "content": "Write a function that adds two numbers."}]


@pytest.fixture(scope="module")
def model_with_defaults(tiny_model_dir, tmp_path_factory):
    """The tiny model, shipping generation defaults that must never be applied."""
    out = tmp_path_factory.mktemp("tiny-with-defaults")
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    config = json.loads((out / "generation_config.json").read_text())
    (out / "generation_config.json").write_text(json.dumps({**config, **SHIPPED}))
    return out


@pytest.fixture(scope="module")
def backend(model_with_defaults):
    return TransformersBackend.from_spec(str(model_with_defaults), EngineConfig(dtype="float32"))


def dec(t, k, p, m, max_tokens=12):
    return DecodingConfig(temperature=t, top_k=k, top_p=p, min_p=m, max_tokens=max_tokens, n=1, seed=0)


@pytest.mark.parametrize("t,k,p,m", COMBOS)
def test_effective_transforms_are_exactly_the_configured_ones(backend, t, k, p, m):
    d = dec(t, k, p, m)
    sampler = backend.effective_sampler(d)
    assert sampler["transforms"] == d.active_transforms()
    names = {"temperature": "TemperatureLogitsWarper", "top_k": "TopKLogitsWarper",
             "top_p": "TopPLogitsWarper", "min_p": "MinPLogitsWarper"}
    assert sampler["processors"] == [names[x["name"]] for x in d.active_transforms() if x["name"] in names]


def test_shipped_defaults_are_recorded_not_applied(backend):
    assert backend.ignored_model_defaults["top_k"] == 7
    assert backend.ignored_model_defaults["repetition_penalty"] == 1.3
    described = backend.describe()
    assert described["ignored_model_generation_defaults"]["no_repeat_ngram_size"] == 2
    assert described["dtype"] == "float32" and described["dtype_reason"] == "set explicitly"


def test_an_unrequested_processor_is_refused(backend):
    backend.model.generation_config.repetition_penalty = 1.3  # as if a default leaked back in
    try:
        with pytest.raises(SelfdistillError, match="refusing to sample"):
            backend.effective_sampler(dec(1.0, 0, 1.0, 0.0))
    finally:
        backend.model.generation_config.repetition_penalty = None


def reference_scores(logits, d):
    """temperature -> top-k -> top-p -> min-p, written from their definitions."""
    s = logits / d.temperature
    if d.top_k:
        kth = torch.topk(s, d.top_k, dim=-1).values[..., -1:]
        s = s.masked_fill(s < kth, -float("inf"))
    if d.top_p < 1:  # drop the least likely tokens whose total mass is at most 1 - top_p
        sorted_s, idx = torch.sort(s, descending=False, dim=-1)
        drop_sorted = torch.softmax(sorted_s, -1).cumsum(-1) <= 1 - d.top_p
        drop_sorted[..., -1] = False
        s = s.masked_fill(drop_sorted.scatter(-1, idx, drop_sorted), -float("inf"))
    if d.min_p:
        probs = torch.softmax(s, -1)
        s = s.masked_fill(probs < d.min_p * probs.max(-1, keepdim=True).values, -float("inf"))
    return s


@pytest.mark.parametrize("t,k,p,m", [c for c in COMBOS if c[0] > 0])
def test_generate_samples_from_the_reference_distribution(backend, t, k, p, m):
    d = dec(t, k, p, m, max_tokens=6)
    enc = backend.tokenizer([backend.render(MSGS)], return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(0)
    out = backend.model.generate(**enc, generation_config=backend.generation_config(d),
                                 output_scores=True, output_logits=True, return_dict_in_generate=True)
    for raw, used in zip(out.logits, out.scores):
        ref = reference_scores(raw, d)
        assert torch.equal(torch.isfinite(ref), torch.isfinite(used))
        fin = torch.isfinite(ref)
        assert torch.allclose(ref[fin], used[fin], atol=1e-5)


def sampled_ranks(backend, d, seeds):
    """The rank (0 = most likely) of every sampled token under the model's raw logits,
    found by teacher-forcing what the engine generated."""
    ranks = []
    prompt = backend.tokenizer(backend.render(MSGS), add_special_tokens=False)["input_ids"]
    for seed in seeds:
        g = backend.generate([MSGS], d, [seed])[0]
        ids = torch.tensor([prompt + g.token_ids])
        with torch.inference_mode():
            logits = backend.model(ids).logits[0, len(prompt) - 1 : -1]
        chosen = ids[0, len(prompt):]
        ranks += (logits > logits.gather(1, chosen[:, None])).sum(1).tolist()
    return ranks


def test_top_k_off_really_samples_beyond_rank_50(backend):
    ranks = sampled_ranks(backend, dec(1.5, 0, 1.0, 0.0, max_tokens=24), range(4))
    assert len(ranks) >= 40 and sum(r >= 50 for r in ranks) >= len(ranks) // 2


def test_top_k_50_never_samples_beyond_rank_50(backend):
    ranks = sampled_ranks(backend, dec(1.5, 50, 1.0, 0.0, max_tokens=24), range(4))
    assert len(ranks) >= 40 and max(ranks) < 50 and len(set(ranks)) > 10


def test_auto_dtype_follows_the_hardware():
    dtype, why = resolve_dtype("auto")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert dtype == ("bfloat16" if native or torch.cuda.is_available() else "float32")
    assert why.startswith("auto")
    dtype, why = resolve_dtype("bfloat16")
    assert dtype == "bfloat16" and why.startswith("set explicitly")
    # an explicit bf16 is kept, and its reason says where this CPU only emulates it
    assert ("emulated" in why) == (not native and not torch.cuda.is_available())
    assert resolve_dtype("float32") == ("float32", "set explicitly")
    with pytest.raises(ValueError):
        resolve_dtype("int8")


def test_engine_config_validation():
    with pytest.raises(ValueError, match="unknown backend"):
        EngineConfig(backend="llamafile")
    with pytest.raises(ValueError, match="base_url"):
        EngineConfig(backend="openai")



def test_the_device_is_chosen_recorded_and_never_contradicted(tiny_model_dir):
    """auto runs where a GPU is visible and says so; the dtype follows the device it
    really runs on; cuda asked for where torch sees none is one clear error."""
    from selfdistill.errors import SelfdistillError as Error
    from selfdistill.generation import resolve_device

    b = TransformersBackend.from_spec(str(tiny_model_dir), EngineConfig(dtype="auto", device="auto"))
    d = b.describe()
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert d["device"] == want == str(next(b.model.parameters()).device.type)
    assert ("GPU" in d["dtype_reason"]) == (want == "cuda")
    assert b.generate([MSGS], DecodingConfig(temperature=0, top_k=0, top_p=1.0, min_p=0.0, max_tokens=3,
                                             n=1, seed=0), [0])[0].completion_tokens > 0
    if not torch.cuda.is_available():
        with pytest.raises(Error, match="device cuda was asked for"):
            resolve_device("cuda")
    with pytest.raises(ValueError):
        EngineConfig(device="tpu")
