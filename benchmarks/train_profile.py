"""Where a training step's time goes: the torch profiler over the second optimiser step of
`selfdistill train` (the first also allocates the optimiser state), by operator.

    .venv/bin/python benchmarks/train_profile.py [--model qwen2.5-coder-0.5b] [--method full] \
        [--per-device-batch-size 1] [--lm-head-positions auto]

Data: the 24 real SSD samples in benchmarks/data/train_samples.jsonl, 2 steps of 4
sequences, bf16 autocast where the CPU has it. Prints the step's wall time and the
operators by self CPU time (matrix products are aten::mm/addmm; autocast casts aten::copy_).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--method", default="full")
    p.add_argument("--per-device-batch-size", type=int, default=1)
    p.add_argument("--lm-head-positions", default="auto")
    args = p.parse_args()

    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    from selfdistill.config import cpu_name
    from selfdistill.training import TrainConfig, build_trainer

    class Second(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == 1:
                self.prof = profile(activities=[ProfilerActivity.CPU])
                self.prof.__enter__()
                self.start = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == 2:
                seconds = time.perf_counter() - self.start
                self.prof.__exit__(None, None, None)
                print(f"second step: {seconds:.1f} s on {cpu_name()}")
                print(self.prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))

    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(TrainConfig(
            model=args.model, data=str(HERE / "data" / "train_samples.jsonl"), out=out, method=args.method,
            learning_rate=1e-5, min_learning_rate=1e-6, max_steps=2, global_batch_size=4,
            per_device_batch_size=args.per_device_batch_size, lm_head_positions=args.lm_head_positions,
            max_seq_length=1024, gradient_checkpointing=False, save_steps=100, progress=False))
        trainer.add_callback(Second())
        trainer.train()


if __name__ == "__main__":
    main()
