"""The bundled GGUF models, for real (slow: they load real weights)."""

import json

import pytest

from selfdistill.errors import SelfdistillError
from selfdistill.files import sha256_file
from selfdistill.models import QWEN_SHA256, assemble_qwen, resolve_model

pytestmark = pytest.mark.slow


def test_qwen_parts_assemble_to_the_published_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFDISTILL_CACHE", str(tmp_path))
    path = assemble_qwen()
    assert path.stat().st_size > 400e6 and sha256_file(path) == QWEN_SHA256
    with open(path, "r+b") as f:  # a corrupted cache is refused, not used
        f.seek(1000)
        f.write(b"\x00\x01")
    with pytest.raises(SelfdistillError, match="does not match"):
        resolve_model("qwen2.5-coder-0.5b")


def test_unknown_model_is_one_clear_error():
    with pytest.raises(SelfdistillError, match="unknown model"):
        resolve_model("not-a-model")
    with pytest.raises(SelfdistillError, match="no such GGUF"):
        resolve_model("/nope/x.gguf")


def test_gguf_model_trains_saves_and_is_evaluated(tmp_path):
    """SmolLM2 from its GGUF: full fine-tuning, save_pretrained (the GGUF quantizer must be
    dropped first), then `eval --model DIR` on the written directory."""
    from selfdistill.cli import main

    data = tmp_path / "s.jsonl"
    rows = [{"prompt": [{"role": "user", "content": f"Print {i}."}], "completion": f"```python\nprint({i})\n```"}
            for i in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["train", "--model", "smollm2-135m", "--data", str(data), "--out", str(tmp_path / "t"),
                 "--max-steps", "2", "--global-batch-size", "2", "--per-device-batch-size", "2",
                 "--learning-rate", "1e-5", "--min-learning-rate", "1e-6", "--no-progress"]) == 0
    model_dir = tmp_path / "t" / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert main(["eval", "--model", str(model_dir), "--problems", "humaneval", "--limit", "2",
                 "--n", "1", "--temperature", "0", "--top-k", "0", "--top-p", "1", "--min-p", "0",
                 "--max-tokens", "32", "--seed", "0", "--out", str(tmp_path / "e"), "--no-progress"]) == 0
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert len(results["problems"]) == 2
    assert results["config"]["generation"]["model"]["spec"] == str(model_dir)


def test_materialised_gguf_is_the_same_model_and_is_checked(tmp_path, monkeypatch):
    """vLLM cannot read GGUF: the bundled model is saved once as safetensors; the copy gives
    the GGUF's logits exactly, and a tampered copy is refused."""
    import torch
    from transformers import AutoModelForCausalLM

    from selfdistill.models import MANIFEST, load_model, materialize_hf

    monkeypatch.setenv("SELFDISTILL_CACHE", str(tmp_path))
    ref = resolve_model("smollm2-135m")
    path = materialize_hf(ref)
    assert path.parent == tmp_path / "hf" and (path / MANIFEST).is_file()
    assert materialize_hf(ref) == path  # cached: the second call verifies and reuses
    ids = torch.tensor([[1, 42, 314, 2718]])
    with torch.inference_mode():
        a = load_model(ref, "float32")(ids).logits
        b = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)(ids).logits
    assert torch.equal(a, b)
    with open(path / "model.safetensors", "r+b") as f:
        f.seek(4096)
        f.write(b"\xff\xfe")
    with pytest.raises(SelfdistillError, match="does not match"):
        materialize_hf(ref)
