"""Per-program start-up of the judge's sandbox against bubblewrap, the well-kept tool for the
same isolation (user namespaces, a minimal read-only root, die-with-parent).

    .venv/bin/python benchmarks/judge_startup.py [--programs 50] [--out docs/benchmarks.md]

One trivial stdin program (LiveCodeBench's import prelude, then `print(a + b)`), judged
one at a time so that the figure is latency, not throughput:
  selfdistill  `judge()`: fork of the preloaded zygote, namespaces, pivot_root into the
               minimal root, cgroup, seccomp, then the program
  bubblewrap   `bwrap --unshare-all --die-with-parent` with the same read-only paths, a
               /proc, /dev and /tmp, running a fresh `python -I` on the same program
               (bubblewrap executes a command, so every program starts an interpreter)
  python -I    the same interpreter start without any isolation, for reference
Writes the table between the judge-startup markers of the markdown file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from docs_block import write_block

from selfdistill.judge import SandboxConfig, judge, judge_description
from selfdistill.judge.policy import host_view
from selfdistill.judge.semantics import LCB_IMPORTS
from selfdistill.problems import Problem, TestCase

HERE = Path(__file__).parent
PROGRAM = "a, b = map(int, input().split())\nprint(a + b)\n"


def timed(fn, n: int) -> float:
    fn()  # warm-up (the zygote starts on first use)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--programs", type=int, default=50)
    p.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks.md"))
    args = p.parse_args()
    from selfdistill.config import cpu_name

    cfg = SandboxConfig(timeout_s=6)
    problem = Problem("t", "s", "stdin", tests=[TestCase("1 2", "3")])

    def ours():
        assert judge(problem, PROGRAM, cfg).ok

    script = LCB_IMPORTS + "\nimport io, sys\nsys.stdin = io.StringIO('1 2\\n')\n" + PROGRAM
    python = os.path.realpath(sys.executable)
    paths, _ = host_view(tuple(cfg.packages))
    binds = []
    for path in sorted(set(paths) | {sys.base_prefix}):
        if os.path.islink(path):
            binds += ["--symlink", os.readlink(path), path]
        elif os.path.exists(path):
            binds += ["--ro-bind", path, path]
    bwrap = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", *binds,
             "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp",
             "--", python, "-I", "-c", script]

    def bubblewrap():
        r = subprocess.run(bwrap, capture_output=True, text=True)
        assert r.stdout.strip() == "3", r.stderr

    def plain():
        r = subprocess.run([python, "-I", "-c", script], capture_output=True, text=True)
        assert r.stdout.strip() == "3", r.stderr

    rows = [("selfdistill judge() (zygote fork, full sandbox)", timed(ours, args.programs))]
    if shutil.which("bwrap"):
        version = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
        rows.append((f"{version} + python -I", timed(bubblewrap, args.programs)))
    rows.append(("python -I, no isolation", timed(plain, args.programs)))
    described = judge_description(cfg)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {cpu_name()} ({os.cpu_count()} cores), one program "
        f"at a time, {args.programs} programs each, by `.venv/bin/python benchmarks/judge_startup.py "
        f"--programs {args.programs}`; selfdistill's sandbox here: limits {described['limits']}, "
        f"seccomp {described['seccomp']}, user namespace {described['user_namespace']}.",
        "",
        "| judge | ms per program |",
        "|---|---|",
        *[f"| {name} | {ms:.1f} |" for name, ms in rows],
    ]
    print(write_block(Path(args.out), "judge-startup", "Judge start-up: zygote vs bubblewrap", lines))


if __name__ == "__main__":
    main()
