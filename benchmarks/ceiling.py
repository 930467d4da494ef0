"""The CPU's own matrix-product ceiling, which the throughput benchmarks report their share of:
GFLOP/s of a square fp32 and bf16 matmul on every thread torch uses.

    .venv/bin/python benchmarks/ceiling.py        # prints RESULT {"threads": ..., "float32": ..., "bfloat16": ...}

Each format is timed for about --seconds, best of several batches of 2048-square products.
A format the CPU only emulates (bf16 without AVX512_BF16 or AMX: about 1 GFLOP/s on an
AVX2-only AMD EPYC, 2026-12-07, against 168 for fp32) is caught by a 512-square probe and
timed on one 1024-square product instead, so it costs seconds, not the quarter of an hour
that thirty 2048-square products would take.
"""

from __future__ import annotations

import argparse
import json
import time

SIZE = 2048
SLOW = 20.0  # GFLOP/s below which a format counts as emulated and is timed once, smaller


def _rate(a, b, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return reps * 2 * a.shape[0] ** 3 / (time.perf_counter() - start) / 1e9


def matmul_rate(dtype: str, seconds: float = 2.0) -> float:
    """GFLOP/s of a square `dtype` matmul: the best batch of 2048-square products within
    about `seconds`; an emulated format's single 1024-square product."""
    import torch

    def pair(n):
        return torch.randn(n, n, dtype=getattr(torch, dtype)), torch.randn(n, n, dtype=getattr(torch, dtype))

    probe = pair(512)
    probe[0] @ probe[1]  # library start-up
    if _rate(*probe, 1) < SLOW:
        return _rate(*pair(1024), 1)
    a, b = pair(SIZE)
    first = _rate(a, b, 1)
    reps = max(1, int(0.25 * first * 1e9 / (2 * SIZE**3)))  # batches of about a quarter second
    best, deadline = first, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        best = max(best, _rate(a, b, reps))
    return best


def measure(seconds: float = 2.0) -> dict:
    import torch

    rates = {d: matmul_rate(d, seconds) for d in ("float32", "bfloat16")}
    return {"threads": torch.get_num_threads(), "size": SIZE, **rates,
            "emulated": [d for d, r in rates.items() if r < SLOW]}


def describe(result: dict) -> str:
    """'bf16 423, fp32 195 GFLOP/s (2048x2048, 2 threads)', an emulated format marked."""
    def one(name, key):
        mark = " (emulated: one 1024-square product)" if key in result.get("emulated", []) else ""
        return f"{name} {result[key]:.0f}{mark}" if result[key] >= 10 else f"{name} {result[key]:.1f}{mark}"
    return (f"{one('bf16', 'bfloat16')}, {one('fp32', 'float32')} GFLOP/s "
            f"({result['size']}x{result['size']}, {result['threads']} threads)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=2.0, help="time per format")
    print("RESULT " + json.dumps(measure(p.parse_args().seconds)))


if __name__ == "__main__":
    main()
