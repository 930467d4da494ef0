"""Shared fixtures: a tiny causal LM built from a config (no download) and LCB-format rows."""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer Llama with hidden size 16 and SmolLM2's real tokenizer (from the bundled
    GGUF, so it has a chat template and the pad == eos pitfall)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from selfdistill.models import resolve_model

    ref = resolve_model("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(ref.location, gguf_file=ref.gguf_file)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def lcb_encode(tests: list[dict]) -> str:
    """Private tests as LiveCodeBench ships them: base64(zlib(pickle(json)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def lcb_row(qid, content, tests, *, starter="", func_name=None, difficulty="easy",
            date="2025-03-01T00:00:00", compress_private=True, n_public=1):
    kind = "functional" if func_name else "stdin"
    cases = [{"input": i, "output": o, "testtype": kind} for i, o in tests]
    private = cases[n_public:]
    return {
        "question_title": qid, "question_content": content, "platform": "atcoder",
        "question_id": qid, "contest_id": "c1", "contest_date": date,
        "starter_code": starter, "difficulty": difficulty,
        "public_test_cases": json.dumps(cases[:n_public]),
        "private_test_cases": lcb_encode(private) if compress_private else json.dumps(private),
        "metadata": json.dumps({"func_name": func_name} if func_name else {}),
    }


@pytest.fixture
def write_jsonl(tmp_path):
    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
    return write
