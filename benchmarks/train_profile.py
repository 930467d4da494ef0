"""Where a training step's time goes: the torch profiler over the second optimiser step of
`selfdistill train` (the first also allocates the optimiser state), by operator.

    .venv/bin/python benchmarks/train_profile.py [--model qwen2.5-coder-0.5b] [--method full] \
        [--per-device-batch-size 1] [--lm-head-positions auto]

Data: the 24 real SSD samples in benchmarks/data/train_samples.jsonl, 2 steps of 4
sequences, bf16 autocast where the CPU has it. Prints the step's wall time and the
operators by self CPU time (matrix products are aten::mm/addmm; autocast casts aten::copy_).
With --shapes the profiler records input shapes (slower: time the step without it) and the
step's matrix-product work is summed from them: 2mkn FLOPs per aten::mm / addmm call.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def matmul_flops(events) -> tuple[float, int]:
    """2mkn per call of aten::mm (a [m,k] @ b [k,n]) and aten::addmm (bias, a, b), from
    key_averages grouped by input shape; and the calls whose shapes were not recorded."""
    total, unknown = 0.0, 0
    for e in events:
        if e.key in ("aten::mm", "aten::addmm"):
            matrices = [s for s in e.input_shapes if len(s) == 2]
            if len(matrices) < 2:
                unknown += e.count
                continue
            a, b = matrices[-2:]
            total += 2 * a[0] * a[1] * b[1] * e.count
    return total, unknown


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--method", default="full")
    p.add_argument("--per-device-batch-size", type=int, default=1)
    p.add_argument("--lm-head-positions", default="auto")
    p.add_argument("--shapes", action="store_true", help="record input shapes; sum the step's matmul FLOPs")
    args = p.parse_args()

    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    from selfdistill.config import cpu_name
    from selfdistill.training import TrainConfig, build_trainer

    class Second(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == 1:
                self.prof = profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes)
                self.prof.__enter__()
                self.start = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == 2:
                seconds = time.perf_counter() - self.start
                self.prof.__exit__(None, None, None)
                print(f"second step: {seconds:.1f} s on {cpu_name()}")
                print(self.prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
                if args.shapes:
                    flops, unknown = matmul_flops(self.prof.key_averages(group_by_input_shape=True))
                    print(f"matrix products of the step: {flops / 1e12:.2f} TFLOP ({unknown} calls without shapes)")

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
