"""Sampling throughput: each selfdistill engine against a plain transformers `generate` loop.

    .venv/bin/python benchmarks/sampling_throughput.py [--model qwen2.5-coder-0.5b] \
        [--prompts 64] [--max-tokens 256] [--batch-size 16] [--out docs/benchmarks.md]

Same prompts (the first N of leetcode:train in the SSD prompt template), same model, same
decoding (the SSD data setting: T 1.6, top-k 20, top-p 0.8, min-p off), in one run. Each
engine runs in its own process, one after the other (two torch processes on a small
machine slow each other many times over). Reported: start-up (load, and vLLM's compile),
generation time, completion tokens, tokens/s of generation alone and with start-up.
Writes the table into the markdown file between the sampling-throughput markers, and the
raw numbers beside it in benchmarks/results/sampling_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from docs_block import write_block

HERE = Path(__file__).parent
ENGINES = ("plain-generate", "transformers", "vllm", "vllm-eager")


def prompts(n: int) -> list[list[dict[str, str]]]:
    from selfdistill.problems import load_problems
    from selfdistill.prompts import prompt_messages

    return [prompt_messages(p) for p in load_problems("leetcode:train").problems[:n]]


def run_plain(args, msgs, decoding) -> tuple[float, float, int]:
    """The baseline a user would write: batched `generate` with left padding."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfdistill.generation import resolve_dtype
    from selfdistill.models import resolve_model

    t0 = time.perf_counter()
    ref = resolve_model(args.model)
    tok = AutoTokenizer.from_pretrained(ref.location, gguf_file=ref.gguf_file)
    dtype, _ = resolve_dtype("auto")
    model = AutoModelForCausalLM.from_pretrained(ref.location, gguf_file=ref.gguf_file,
                                                 dtype=getattr(torch, dtype)).eval()
    startup = time.perf_counter() - t0
    t0, tokens = time.perf_counter(), 0
    for i in range(0, len(msgs), args.batch_size):
        texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                 for m in msgs[i : i + args.batch_size]]
        enc = tok(texts, return_tensors="pt", padding=True, padding_side="left")
        torch.manual_seed(i)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, temperature=decoding.temperature,
                                 top_k=decoding.top_k, top_p=decoding.top_p,
                                 max_new_tokens=decoding.max_tokens, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        tokens += int((new != tok.pad_token_id).sum())
    return startup, time.perf_counter() - t0, tokens


def run_engine(args, msgs, decoding) -> tuple[float, float, int]:
    from selfdistill.generation import EngineConfig, item_seed, make_backend

    t0 = time.perf_counter()
    eager = args.engine == "vllm-eager"  # vLLM without torch.compile and graph capture
    backend = make_backend(args.model, EngineConfig(backend=args.engine.removesuffix("-eager"),
                                                    dtype="auto", max_model_len=args.max_model_len,
                                                    enforce_eager=eager))
    startup = time.perf_counter() - t0
    # vLLM schedules everything it is given at once; transformers batches as configured
    step = len(msgs) if args.engine.startswith("vllm") else args.batch_size
    t0, tokens = time.perf_counter(), 0
    for i in range(0, len(msgs), step):
        chunk = msgs[i : i + step]
        gens = backend.generate(chunk, decoding, [item_seed(0, i + j) for j in range(len(chunk))])
        tokens += sum(g.completion_tokens for g in gens)
    elapsed = time.perf_counter() - t0
    backend.close()
    return startup, elapsed, tokens


def worker(args) -> None:
    from selfdistill.generation import DecodingConfig

    decoding = DecodingConfig(temperature=1.6, top_k=20, top_p=0.8, min_p=0.0,
                              max_tokens=args.max_tokens, n=1, seed=0)
    msgs = prompts(args.prompts)
    fn = run_plain if args.engine == "plain-generate" else run_engine
    startup, elapsed, tokens = fn(args, msgs, decoding)
    Path(args.json_out).write_text(json.dumps({"engine": args.engine, "startup_s": startup,
                                               "generate_s": elapsed, "tokens": tokens}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-model-len", type=int, default=4096, help="vllm: prompt + response tokens")
    p.add_argument("--engines", default=",".join(ENGINES),
                   help="comma-separated engines to run, or none to rewrite the table from the raw file")
    p.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks.md"))
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.engine:
        return worker(args)
    from selfdistill.config import cpu_name
    from selfdistill.generation import resolve_dtype

    dtype, why = resolve_dtype("auto")
    settings = {"cpu": cpu_name(), "cores": os.cpu_count(), "dtype": dtype, "model": args.model,
                "prompts": args.prompts, "max_tokens": args.max_tokens,
                "batch_size": args.batch_size, "max_model_len": args.max_model_len}
    raw = HERE / "results" / "sampling_throughput.json"
    # rows of engines not rerun are kept when they were measured with the same settings
    earlier = json.loads(raw.read_text()) if raw.exists() else {}
    same = all(earlier.get(k) == v for k, v in settings.items())
    rerun = [] if args.engines == "none" else args.engines.split(",")  # none: re-render only
    if not rerun and not same:
        sys.exit(f"--engines none: {raw} was measured with other settings; nothing to render")
    results = [r for r in earlier.get("results", []) if same and r["engine"] not in rerun]
    for engine in rerun:
        tmp = Path(f"/tmp/sampling-throughput-{engine}.json")
        cmd = [sys.executable, __file__, "--engine", engine, "--json-out", str(tmp),
               "--model", args.model, "--prompts", str(args.prompts),
               "--max-tokens", str(args.max_tokens), "--batch-size", str(args.batch_size),
               "--max-model-len", str(args.max_model_len)]
        print(f"[{engine}] running", flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        results.append({**json.loads(tmp.read_text()), "date": time.strftime("%Y-%m-%d"),
                        "command": "benchmarks/sampling_throughput.py " + " ".join(sys.argv[1:])})
        print(results[-1], flush=True)
    base = next((r for r in results if r["engine"] == "plain-generate"), None)
    base_rate = base["tokens"] / base["generate_s"] if base else None
    results.sort(key=lambda r: ENGINES.index(r["engine"]))
    meta = {**settings, "dtype_reason": why, "decoding": "T 1.6, top-k 20, top-p 0.8, min-p off",
            "results": results}
    (HERE / "results").mkdir(exist_ok=True)
    raw.write_text(json.dumps(meta, indent=1))
    commands = sorted({r.get("command", "(earlier run)") for r in results})
    lines = [
        f"Measured on {meta['cpu']} ({meta['cores']} cores, {dtype}: {why}), {args.model}, "
        f"{args.prompts} prompts x up to {args.max_tokens} tokens, each engine in its own "
        "process on the otherwise idle machine, by " + "; ".join(f"`.venv/bin/python {c}`" for c in commands)
        + " (raw numbers in `benchmarks/results/sampling_throughput.json`).",
        "",
        "| engine | measured | start-up s | generation s | tokens | tokens/s | vs plain generate | tokens/s incl. start-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rate = r["tokens"] / r["generate_s"]
        total = r["tokens"] / (r["generate_s"] + r["startup_s"])
        ratio = f"**{rate / base_rate:.2f}x**" if base_rate else "n/a"
        lines.append(f"| {r['engine']} | {r.get('date', '?')} | {r['startup_s']:.0f} | {r['generate_s']:.0f} | {r['tokens']} | "
                     f"{rate:.1f} | {ratio} | {total:.1f} |")
    print(write_block(Path(args.out), "sampling-throughput", "Sampling throughput", lines))


if __name__ == "__main__":
    main()
