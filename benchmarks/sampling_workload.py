"""Sampling throughput on the powered experiment's workload: n responses per problem at
several evaluation temperatures under the paper's truncation, through the vLLM engine.

    .venv/bin/python benchmarks/sampling_workload.py --label "this checkout" \
        [--problems humaneval[:16]] [--n 4] [--temperatures 0.7,1.0] [--max-tokens 384]

One engine start, then for each temperature one `generate` call with every problem's n
requests (vLLM schedules them together; the n requests of a problem share their prompt
through the prefix cache). Reported: start-up, generation seconds, responses/s, prompt and
generated tokens/s, and the generated tokens' share of the CPU's bf16 (or fp32) matmul rate
measured in the same run (2 FLOPs per parameter per generated token; prefill and attention
left out). To measure another version of the engine code, run this script with
PYTHONPATH=<that checkout>/src and another --label; rows with other labels are kept when
their settings are the same. Without --label the table is rewritten from the raw file. Raw numbers: benchmarks/results/sampling_workload.json; the
table goes between the sampling-workload markers of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ceiling import matmul_rate
from docs_block import write_block

HERE = Path(__file__).parent
RAW = HERE / "results" / "sampling_workload.json"


def worker(args) -> dict:

    from selfdistill.generation import DecodingConfig, EngineConfig, item_seed, make_backend
    from selfdistill.problems import load_problems
    from selfdistill.prompts import prompt_messages

    msgs = [prompt_messages(p) for p in load_problems(args.problems).problems]
    start = time.perf_counter()
    backend = make_backend(args.model, EngineConfig(backend="vllm", dtype="auto", max_model_len=args.max_model_len,
                                                    enforce_eager=args.enforce_eager))
    startup = time.perf_counter() - start
    cells = []
    for i, t in enumerate(float(x) for x in args.temperatures.split(",")):
        decoding = DecodingConfig(temperature=t, top_k=args.top_k, top_p=args.top_p, min_p=0.0,
                                  max_tokens=args.max_tokens, n=args.n, seed=0)
        prompts = [m for m in msgs for _ in range(args.n)]
        start = time.perf_counter()
        gens = backend.generate(prompts, decoding, [item_seed(i, j) for j in range(len(prompts))])
        cells.append({"temperature": t, "seconds": time.perf_counter() - start, "responses": len(gens),
                      "prompt_tokens": sum(g.prompt_tokens for g in gens),
                      "generated_tokens": sum(g.completion_tokens for g in gens),
                      "sampler": backend.effective_sampler(decoding)})
    params = sum(p.numel() for p in _model_shell(backend.hf_dir).parameters())
    backend.close()
    return {"startup_s": startup, "cells": cells, "parameters": params, "dtype": backend.dtype}


def _model_shell(model_dir):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--label", help="name of this row (the engine code measured); without it the table is "
                                    "only rewritten from the raw file")
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--problems", default="humaneval[:16]")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--temperatures", default="0.7,1.0")
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--top-p", type=float, default=0.8)
    p.add_argument("--max-tokens", type=int, default=384)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--enforce-eager", type=lambda s: s == "true", default=True)
    p.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks.md"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)))
        return
    from selfdistill.config import cpu_name
    from selfdistill.generation import resolve_dtype

    settings = {"cpu": cpu_name(), "cores": os.cpu_count(), "model": args.model, "problems": args.problems,
                "n": args.n, "temperatures": args.temperatures, "top_k": args.top_k, "top_p": args.top_p,
                "max_tokens": args.max_tokens, "max_model_len": args.max_model_len}
    earlier = json.loads(RAW.read_text()) if RAW.exists() else {}
    rows = [r for r in earlier.get("rows", []) if earlier.get("settings") == settings and r["label"] != args.label]
    dtype, why = resolve_dtype("auto")
    if args.label is None:
        if not rows:
            sys.exit(f"{RAW}: no rows measured with these settings; nothing to render")
        why = earlier["dtype_reason"]
    else:
        peak = matmul_rate(dtype)  # benchmarks/ceiling.py, in this process
        cmd = [sys.executable, __file__, "--worker", *sys.argv[1:]]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            sys.exit(run.stderr[-3000:])
        result = json.loads(run.stdout.split("RESULT ", 1)[1].splitlines()[0])
        rows.append({"label": args.label, "date": time.strftime("%Y-%m-%d"), "matmul_gflops": peak,
                     "enforce_eager": args.enforce_eager,
                     "command": "benchmarks/sampling_workload.py " + " ".join(sys.argv[1:]),
                     "pythonpath": os.environ.get("PYTHONPATH", ""), **result})
        RAW.parent.mkdir(exist_ok=True)
        RAW.write_text(json.dumps({"settings": settings, "dtype_reason": why, "rows": rows}, indent=1))
    lines = [f"Measured on {settings['cpu']} ({settings['cores']} cores, {dtype}: {why}), {args.model}, "
             f"{args.problems} x n {args.n} at T {args.temperatures} (top-k {args.top_k}, top-p {args.top_p}, "
             f"up to {args.max_tokens} tokens), vLLM engine, one engine start and one generate call per "
             "temperature, each row in its own process "
             "(raw numbers and commands in `benchmarks/results/sampling_workload.json`).", "",
             "| engine code | execution | measured | start-up s | generation s | responses | responses/s | prompt tokens/s "
             "| generated tokens/s | of the matmul ceiling | vs first row |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    first = None
    for r in rows:
        seconds = sum(c["seconds"] for c in r["cells"])
        responses = sum(c["responses"] for c in r["cells"])
        generated = sum(c["generated_tokens"] for c in r["cells"])
        prompt = sum(c["prompt_tokens"] for c in r["cells"])
        rate = responses / seconds
        first = first or rate
        share = 2 * r["parameters"] * generated / seconds / 1e9 / r["matmul_gflops"]
        execution = "eager" if r["enforce_eager"] else "compiled"
        lines.append(f"| {r['label']} | {execution} | {r['date']} | {r['startup_s']:.0f} | {seconds:.0f} | {responses} | "
                     f"{rate:.3f} | {prompt / seconds:.0f} | {generated / seconds:.1f} | {100 * share:.0f}% | "
                     f"**{rate / first:.2f}x** |")
    print(write_block(Path(args.out), "sampling-workload", "Sampling throughput on the experiment's workload", lines))


if __name__ == "__main__":
    main()
