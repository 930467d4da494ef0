"""Training throughput at the real size: `selfdistill train` against a bare TRL `SFTTrainer`
script, padded and unpadded, full fine-tuning and LoRA, against the CPU's own matmul ceiling.

    .venv/bin/python benchmarks/train_throughput.py [--model qwen2.5-coder-0.5b] \
        [--methods full,lora] [--rows 4] [--steps 1] [--rounds 2] [--out docs/benchmarks.md]

Data: the first --rows of benchmarks/data/train_samples.jsonl (real SSD samples of the
embedded default on leetcode prompts at T_train 1.6, prompts of 270-1,015 tokens), one
epoch of them (--rows = --steps x --batch), so every trainer sees the same sequences and the
work is known exactly. Trainers, each in its own fresh process, in ABBA order over --rounds:
  bare TRL          the script a user would write: `SFTConfig` with the same values (batch
                    --batch per forward pass, padded to the longest), `SFTTrainer(...).train()`
  selfdistill padded     `selfdistill train --per-device-batch-size BATCH --lm-head-positions trl`
                    (what it ran before: the same work as bare TRL plus its own records)
  selfdistill            `selfdistill train` with its defaults: one sequence per forward pass
                    (nothing padded), the LM head and loss at response positions only
  selfdistill + checkpointing    the same with gradient checkpointing (its time and memory)
All use the same model files, optimiser, schedule, global batch, sequence limit and number
format. Reported per trainer: real (non-pad) tokens per second of `train()` (TRL's num_tokens,
the attention mask's sum, over train_runtime), the spread over rounds, peak RSS of the
process (wait4), the loss per step, and the fraction of the CPU's measured bf16 (or fp32)
matmul rate that the useful work reaches. Useful work: 6 FLOPs per parameter per token for
full fine-tuning (forward, input and weight gradients), 4 for LoRA (no weight gradients of
frozen layers), over the decoder's linear layers for every real token and over the LM head
for every response token only (its prompt positions carry no loss); attention's own FLOPs
are left out, so the fraction is a slight underestimate. Writes the table between the
train-throughput markers and every run's numbers to benchmarks/results/train_throughput.json;
in fp32 (a CPU without native bf16) between the train-throughput-fp32 markers and into
train_throughput-fp32.json, so each number format keeps its own table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ceiling import describe
from docs_block import write_block

HERE = Path(__file__).parent

BARE_TRL = r'''
import json, sys
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

model_dir, data, out, steps, batch, seq, bf16, lr, min_lr, method = sys.argv[1:11]
rows = []
for line in open(data):
    r = json.loads(line)
    rows.append({"prompt": r["prompt"], "completion": [{"role": "assistant", "content": r["completion"]}]})
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
args = SFTConfig(output_dir=out, max_steps=int(steps), per_device_train_batch_size=int(batch),
                 gradient_accumulation_steps=1, learning_rate=float(lr), lr_scheduler_type="cosine_with_min_lr",
                 lr_scheduler_kwargs={"min_lr": float(min_lr)}, weight_decay=0.1, adam_beta1=0.9, adam_beta2=0.95,
                 max_length=int(seq), completion_only_loss=True, bf16=bf16 == "true", use_cpu=True,
                 gradient_checkpointing=False, save_strategy="no", logging_steps=1, seed=0, report_to="none",
                 disable_tqdm=True)
peft_config = None
if method == "lora":
    from peft import LoraConfig
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                     peft_config=peft_config)
result = trainer.train()
logs = [h for h in trainer.state.log_history if "num_tokens" in h]
print("RESULT " + json.dumps({"train_runtime": result.metrics["train_runtime"], "num_tokens": logs[-1]["num_tokens"],
                              "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h]}))
'''

TRAINERS = ("bare TRL", "selfdistill padded", "selfdistill", "selfdistill + checkpointing")


def _run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB of this child alone (wait4), and its stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd[:4])} ...\n{stderr[-3000:]}")
    return wall, usage.ru_maxrss / 1024, stdout


def _result(stdout: str) -> dict:
    return json.loads(stdout.split("RESULT ", 1)[1].splitlines()[0])


def useful_flops(model_dir: str, data: Path, seq: int, method: str) -> tuple[float, int, int]:
    """FLOPs of one epoch over `data` (see the module docstring), real tokens, response tokens."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    head = model.get_output_embeddings()
    body = sum(m.weight.numel() for m in model.modules()
               if isinstance(m, torch.nn.Linear) and m is not head)
    tokens = response = 0
    for line in data.read_text().splitlines():
        row = json.loads(line)
        prompt = len(tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True,
                                             return_dict=False))
        whole = len(tok.apply_chat_template(
            row["prompt"] + [{"role": "assistant", "content": row["completion"]}], tokenize=True,
            return_dict=False))
        whole = min(whole, seq)
        tokens += whole
        response += max(0, whole - prompt)
    per_param = 6 if method == "full" else 4
    return per_param * (body * tokens + head.weight.numel() * response), tokens, response


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--data", default=str(HERE / "data" / "train_samples.jsonl"))
    p.add_argument("--methods", default="full,lora")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--batch", type=int, default=4, help="sequences per optimiser step")
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--bf16", choices=["auto", "true", "false"], default="auto")
    p.add_argument("--rounds", type=int, default=2, help="runs per trainer, in ABBA order")
    p.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks.md"))
    args = p.parse_args()

    from selfdistill.config import cpu_name
    from selfdistill.models import materialize_hf, resolve_model
    from selfdistill.training import resolve_bf16

    ref = resolve_model(args.model)
    model_dir = str(materialize_hf(ref)) if ref.gguf_file else ref.location
    bf16 = resolve_bf16(args.bf16 if args.bf16 == "auto" else args.bf16 == "true")[0]
    flag = "true" if bf16 else "false"
    lr, min_lr = "1e-5", "1e-6"
    rows = args.steps * args.batch
    tmpdir = tempfile.mkdtemp(prefix="train-throughput-")
    data = Path(tmpdir) / "rows.jsonl"  # exactly one epoch
    lines = Path(args.data).read_text().splitlines()[:rows]
    if len(lines) < rows:
        sys.exit(f"{args.data}: {len(lines)} rows, need --steps x --batch = {rows}")
    data.write_text("\n".join(lines) + "\n")

    matmul = _result(_run([sys.executable, str(HERE / "ceiling.py")])[2])
    peak = matmul["bfloat16" if bf16 else "float32"]
    print(f"matmul: {describe(matmul)}", flush=True)

    def run(trainer: str, method: str, tmp: str) -> dict:
        if trainer == "bare TRL":
            wall, rss, out = _run([sys.executable, "-c", BARE_TRL, model_dir, str(data), f"{tmp}/bare",
                                   str(args.steps), str(args.batch), str(args.seq), flag, lr, min_lr, method])
            r = _result(out)
            return {"tokens": r["num_tokens"], "runtime": r["train_runtime"], "wall": wall, "rss": rss,
                    "losses": r["losses"]}
        per_device = args.batch if trainer == "selfdistill padded" else 1
        head = "trl" if trainer == "selfdistill padded" else "auto"
        wall, rss, _ = _run([sys.executable, "-m", "selfdistill.cli", "train", "--model", model_dir, "--data",
                             str(data), "--out", f"{tmp}/sd", "--method", method, "--max-steps", str(args.steps),
                             "--global-batch-size", str(args.batch), "--per-device-batch-size", str(per_device),
                             "--lm-head-positions", head, "--max-seq-length", str(args.seq),
                             "--learning-rate", lr, "--min-learning-rate", min_lr, "--warmup-steps", "0",
                             "--lora-r", "16", "--lora-alpha", "32", "--lora-dropout", "0",
                             "--bf16", flag, "--gradient-checkpointing", str(trainer.endswith("checkpointing")).lower(),
                             "--save-steps",
                             str(args.steps + 1), "--seed", "0", "--no-progress"])
        history = json.loads(Path(f"{tmp}/sd/loss.json").read_text())
        metrics = json.loads(Path(f"{tmp}/sd/train_config.json").read_text())["train_metrics"]
        return {"tokens": history[-1]["num_tokens"], "runtime": metrics["train_runtime"], "wall": wall,
                "rss": rss, "losses": [h["loss"] for h in history]}

    table = [f"`benchmarks/train_throughput.py {' '.join(sys.argv[1:])}` on {cpu_name()} ({os.cpu_count()} cores, "
             f"{time.strftime('%Y-%m-%d')}; {'bf16 autocast' if bf16 else 'fp32'}; {args.model}; one epoch of the "
             f"first {rows} rows of {Path(args.data).name}: {args.steps} optimiser step(s) of {args.batch} sequences "
             f"up to {args.seq} tokens); matmul ceiling measured in the same run (`benchmarks/ceiling.py`): "
             f"{describe(matmul)}. Each trainer ran "
             f"{args.rounds} times in ABBA order, each time in a fresh process; tokens/s is the median run "
             "(every run in brackets).", "",
             "| method | trainer | real tokens/s [runs] | vs bare TRL | of the FLOP ceiling | train() s | peak RSS MiB "
             "| loss per step |", "|---|---|---|---|---|---|---|---|"]
    notes, raw = [], {"command": "benchmarks/train_throughput.py " + " ".join(sys.argv[1:]), "cpu": cpu_name(),
                      "date": time.strftime("%Y-%m-%d"), "matmul_gflops": matmul, "methods": {}}
    for method in args.methods.split(","):
        flops, tokens, response = useful_flops(model_dir, data, args.seq, method)
        runs: dict[str, list[dict]] = {t: [] for t in TRAINERS}
        for r in range(args.rounds):
            for trainer in TRAINERS[:: 1 if r % 2 == 0 else -1]:
                with tempfile.TemporaryDirectory() as tmp:
                    runs[trainer].append(run(trainer, method, tmp))
                last = runs[trainer][-1]
                print(f"{method} {trainer}: {last['tokens'] / last['runtime']:.1f} tokens/s "
                      f"({last['tokens']:.0f} tokens, {last['runtime']:.1f} s)", flush=True)
        rate = {t: statistics.median(x["tokens"] / x["runtime"] for x in v) for t, v in runs.items()}
        for trainer, results in runs.items():
            rates = [x["tokens"] / x["runtime"] for x in results]
            mid = sorted(results, key=lambda x: x["tokens"] / x["runtime"])[len(results) // 2]
            fraction = flops / mid["runtime"] / 1e9 / peak
            table.append(
                f"| {method} | {trainer} | **{rate[trainer]:.1f}** [{', '.join(f'{x:.1f}' for x in rates)}] | "
                f"{rate[trainer] / rate['bare TRL']:.2f}x | {100 * fraction:.0f}% | {mid['runtime']:.1f} | "
                f"{mid['rss']:.0f} | {', '.join(f'{x:.4f}' for x in mid['losses'])} |")
        print(table[-3:], flush=True)
        raw["methods"][method] = {"useful_flops": flops, "tokens": tokens, "response_tokens": response, "runs": runs}
        notes.append(f"{method}: {tokens} real tokens, {response} of them response tokens, useful work "
                     f"{flops / 1e12:.2f} TFLOP")
    table[0] += " Per epoch: " + "; ".join(notes) + "."
    (HERE / "results").mkdir(exist_ok=True)
    suffix = "" if bf16 else "-fp32"
    (HERE / "results" / f"train_throughput{suffix}.json").write_text(json.dumps(raw, indent=1))
    print(write_block(Path(args.out), f"train-throughput{suffix}",
                      "Training throughput" + (" in fp32" if suffix else ""), table))


if __name__ == "__main__":
    main()
