"""benchmarks/as_avx2.py: a selfdistill command run as on a CPU with AVX2 and nothing newer
(the main job's time limit holds for such CPUs too)."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "as_avx2.py"

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 only")


def test_every_newer_feature_is_gone_and_dtype_auto_falls_back_to_fp32():
    run = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["environment"] == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                                   "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    assert seen["torch_cpu_capability"] == "AVX2"
    assert seen["_is_avx2_supported"] is True
    for name in ("_is_avx512_supported", "_is_avx512_bf16_supported", "_is_vnni_supported",
                 "_is_amx_tile_supported", "_is_amx_fp16_supported"):
        assert seen[name] is False, name
    assert seen["dtype_auto"][0] == "float32"
    assert "no native bf16" in seen["dtype_auto"][1]


def test_it_hands_its_arguments_and_exit_status_to_the_cli():
    ok = subprocess.run([sys.executable, str(SCRIPT), "problems", "humaneval[:3]"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "3" in ok.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), "problems", "jsonl:/nonexistent.jsonl"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "nonexistent" in bad.stderr
