"""Run a `selfdistill` command as it would run on a CPU with AVX2 and nothing newer.

    .venv/bin/python benchmarks/as_avx2.py run configs/cpu-demo.yaml --out runs/cpu-demo-avx2

The main job must fit in 30 minutes on whichever CPU this kind of machine gets, AVX-512
BF16 / AMX or AVX2 only, and a machine of the second kind is not always at hand. On a
newer x86 CPU this wrapper takes away what an AVX2-only one lacks, before anything is
imported, in every library the job uses:

- torch's own kernels: ATEN_CPU_CAPABILITY=avx2 (read when torch loads);
- the libraries behind torch's matrix products: MKL (fp32, torch's BLAS in the CPU wheel)
  through MKL_ENABLE_INSTRUCTIONS=AVX2, oneDNN (bf16 and the fused CPU ops) through
  ONEDNN_MAX_CPU_ISA=AVX2;
- every feature test that picks a code path (`torch.cpu._is_avx512_supported`,
  `_is_avx512_bf16_supported`, `_is_vnni_supported`, `_is_amx_tile_supported`,
  `_is_amx_fp16_supported`) answers False. So vLLM loads its AVX2 kernel library
  (`vllm._C_AVX2`) and its AVX2 attention, and selfdistill's `dtype auto` picks fp32
  ("CPU has no native bf16"), as on the real thing.

What it cannot take away: the clock, the cache sizes and the memory bandwidth of the
machine it runs on, so its times estimate an AVX2 CPU of the same generation, not every
AVX2 CPU. The engine's vLLM runs in this process (selfdistill sets
VLLM_ENABLE_V1_MULTIPROCESSING=0), so the patched tests hold for it; the judge's
sandboxes import no torch. `python benchmarks/as_avx2.py --check` prints what each test
answers and which kernels torch reports, and exits.
"""

from __future__ import annotations

import os
import sys

CAPS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
os.environ.update(CAPS)  # before torch loads: each library reads its cap once

import torch  # noqa: E402  (after the variables it reads at load)
import torch.cpu  # noqa: E402

FEATURES_ABSENT = ("_is_avx512_supported", "_is_avx512_bf16_supported", "_is_vnni_supported",
                   "_is_amx_tile_supported", "_is_amx_fp16_supported")


def _absent() -> bool:
    return False


def emulate() -> None:
    if not torch.cpu._is_avx2_supported():
        sys.exit("error: this CPU lacks AVX2 itself; nothing to emulate")
    for name in FEATURES_ABSENT:
        if not hasattr(torch.cpu, name):
            sys.exit(f"error: torch {torch.__version__} has no torch.cpu.{name}; the emulation needs updating")
        setattr(torch.cpu, name, _absent)


def report() -> dict[str, object]:
    from selfdistill.generation import resolve_dtype

    return {"environment": {name: os.environ[name] for name in CAPS},
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{name: getattr(torch.cpu, name)() for name in ("_is_avx2_supported", *FEATURES_ABSENT)},
            "dtype_auto": resolve_dtype("auto", "cpu")}


def main() -> None:
    emulate()
    if sys.argv[1:] == ["--check"]:
        import json

        print(json.dumps(report(), indent=1))
        return
    from selfdistill.cli import main as cli

    sys.exit(cli(sys.argv[1:]))


if __name__ == "__main__":
    main()
