"""benchmarks/ceiling.py: the matmul ceiling the throughput benchmarks divide by, with an
emulated number format caught and timed on one small product instead of thirty big ones."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import ceiling  # noqa: E402


def test_a_format_below_the_threshold_is_timed_once_on_a_smaller_product(monkeypatch):
    import torch

    sizes = []
    real_matmul = torch.Tensor.__matmul__
    monkeypatch.setattr(torch.Tensor, "__matmul__", lambda a, b: sizes.append(a.shape[0]) or real_matmul(a, b))
    monkeypatch.setattr(ceiling, "SLOW", float("inf"))  # every format counts as emulated
    assert ceiling.matmul_rate("float32") > 0
    assert sizes == [512, 512, 1024]  # start-up, probe, the one measured product
    sizes.clear()
    monkeypatch.setattr(ceiling, "SLOW", 0.0)  # nothing counts as emulated
    assert ceiling.matmul_rate("float32", seconds=0.2) > 0
    assert sizes[:2] == [512, 512] and set(sizes[2:]) == {ceiling.SIZE} and len(sizes) >= 4


def test_the_command_reports_both_formats_and_marks_the_emulated_one():
    run = subprocess.run([sys.executable, str(BENCHMARKS / "ceiling.py"), "--seconds", "0.2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert result["float32"] > 0 and result["bfloat16"] > 0 and result["threads"] >= 1
    assert result["emulated"] == [d for d in ("float32", "bfloat16") if result[d] < ceiling.SLOW]
    text = ceiling.describe(result)
    assert ("emulated" in text) == bool(result["emulated"])


@pytest.mark.parametrize("emulated", [[], ["bfloat16"]])
def test_describe_names_each_rate_and_the_product_size(emulated):
    text = ceiling.describe({"threads": 2, "size": 2048, "float32": 168.4, "bfloat16": 0.94,
                             "emulated": emulated})
    assert text.startswith("bf16 0.9") and "fp32 168 GFLOP/s (2048x2048, 2 threads)" in text
    assert ("bf16 0.9 (emulated: one 1024-square product)" in text) == bool(emulated)
