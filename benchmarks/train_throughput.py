"""Training throughput: `selfdistill train` against a bare TRL `SFTTrainer` script on the
same data and settings, in one run.

    .venv/bin/python benchmarks/train_throughput.py [--model smollm2-135m] [--steps 6] \
        [--data FILE] [--out docs/benchmarks.md]

Both run in their own fresh process, alternating (ABBA over --rounds), on the same samples (default:
benchmarks/data/train_samples.jsonl, 32 prompt/response rows; or a `sample` stage's
samples.jsonl) with the same model files, optimiser, schedule, batch, sequence length and
number format:
  selfdistill   `selfdistill.cli train ...` (what users run: settings pinned, checkpoints,
                the merged model, loss curve and provenance written)
  bare TRL      the script a user would write: the same Hugging Face model directory,
                `SFTConfig` with the same values, `SFTTrainer(...).train()`, `save_model`
Reported per run: response+prompt tokens trained per second of `train()` (TRL's own
num_tokens over its train_runtime), wall time of the whole process, and the peak resident
memory of the process (ru_maxrss). Writes the table between the train-throughput markers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docs_block import write_block

HERE = Path(__file__).parent

BARE_TRL = r'''
import json, sys
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

model_dir, data, out, steps, batch, seq, bf16, lr, min_lr = sys.argv[1:10]
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
trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
result = trainer.train()
trainer.save_model(out + "/model")
logs = [h for h in trainer.state.log_history if "num_tokens" in h]
print("RESULT " + json.dumps({"train_runtime": result.metrics["train_runtime"], "num_tokens": logs[-1]["num_tokens"],
                              "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h]}))
'''


def _run(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MiB of this child alone (wait4), and its stdout."""
    import os

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data", default=str(HERE / "data" / "train_samples.jsonl"))
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=4)
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
    def bare_run(tmp: str) -> tuple:
        wall, rss, out = _run([sys.executable, "-c", BARE_TRL, model_dir, args.data, f"{tmp}/bare", str(args.steps),
                               str(args.batch), str(args.seq), flag, lr, min_lr])
        bare = json.loads(out.split("RESULT ", 1)[1])
        return bare["num_tokens"] / bare["train_runtime"], bare["train_runtime"], wall, rss, bare["losses"]

    def ours_run(tmp: str) -> tuple:
        wall, rss, _ = _run([sys.executable, "-m", "selfdistill.cli", "train", "--model", model_dir, "--data",
                             args.data, "--out", f"{tmp}/sd", "--method", "full", "--max-steps", str(args.steps),
                             "--global-batch-size", str(args.batch), "--per-device-batch-size", str(args.batch),
                             "--max-seq-length", str(args.seq), "--learning-rate", lr, "--min-learning-rate", min_lr,
                             "--bf16", flag, "--gradient-checkpointing", "false", "--save-steps",
                             str(args.steps + 1), "--no-progress"])
        history = json.loads(Path(f"{tmp}/sd/loss.json").read_text())
        runtime = json.loads(Path(f"{tmp}/sd/train_config.json").read_text())["train_metrics"]["train_runtime"]
        return history[-1]["num_tokens"] / runtime, runtime, wall, rss, [h["loss"] for h in history]

    # ABBA order over the rounds, so that a machine getting slower or faster favours neither
    runs: dict[str, list[tuple]] = {"bare TRL SFTTrainer": [], "selfdistill train": []}
    order = []
    for r in range(args.rounds):
        order += ["bare TRL SFTTrainer", "selfdistill train"][:: 1 if r % 2 == 0 else -1]
    for name in order:
        with tempfile.TemporaryDirectory() as tmp:
            runs[name].append((bare_run if name.startswith("bare") else ours_run)(tmp))
            print(f"{name}: {runs[name][-1][0]:.1f} tokens/s", flush=True)
    # per trainer: the run with the median tokens/s (the faster of two)
    results = {n: sorted(v, key=lambda x: x[0])[len(v) // 2] for n, v in runs.items()}
    ratio = results["selfdistill train"][0] / results["bare TRL SFTTrainer"][0]
    lines = [f"`benchmarks/train_throughput.py --model {args.model} --steps {args.steps}` on {cpu_name()} "
             f"({'bf16' if bf16 else 'fp32'}, full fine-tuning, batch {args.batch}, sequences up to {args.seq} "
             f"tokens, {Path(args.data).name}), {args.rounds} runs each in ABBA order in one run; per trainer "
             f"the median run (tokens/s of every run: "
             + "; ".join(f"{n} " + ", ".join(f"{x[0]:.0f}" for x in v) for n, v in runs.items()) + "):", "",
             "| trainer | tokens/s in train() | train() s | process wall s | peak RSS MiB | loss per step |",
             "|---|---|---|---|---|---|"]
    ours, bare_losses = results["selfdistill train"][4], results["bare TRL SFTTrainer"][4]
    gap = max(abs(a - b) / abs(b) for a, b in zip(ours, bare_losses))
    for name, (tps, runtime, wall, rss, losses) in results.items():
        lines.append(f"| {name} | {tps:.0f} | {runtime:.1f} | {wall:.1f} | {rss:.0f} | "
                     f"{', '.join(f'{x:.4f}' for x in losses)} |")
    lines += ["", f"selfdistill / bare TRL tokens per second: **{ratio:.2f}x**; the loss curves differ by at most "
              f"{100 * gap:.2f}% per step."]
    print(write_block(Path(args.out), "train-throughput", "Training throughput", lines))


if __name__ == "__main__":
    main()
