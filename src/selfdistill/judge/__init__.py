"""The judge: runs model-written programs against a problem's tests and decides verdicts.

    semantics.py  what a verdict means (LiveCodeBench's transforms and comparisons, the
                  value codec); pure functions
    protocol.py   the Job record sent into a sandbox and the events that come out
    harness.py    what runs beside the program in the sandbox (outputs out, no verdicts)
    isolation.py  namespaces, read-only mounts, an unprivileged uid, resource limits
    server.py     the zygote that forks one sandbox per program
    referee.py    verdicts decided from the raw outputs (in the checker)
    checker.py    the process that reads, decodes and compares a program's output, under
                  the per-test time limit and a memory limit, killed when it overruns
    config.py     the limits (SandboxConfig) and the verdict (ExecutionResult, STATUSES)
    policy.py     what each sandbox is given: host view, rlimits, seccomp, its Job
    zygote.py     the evaluator's client of server.py
    channels.py   the evaluator's ends of a sandbox's pipes, read under caps
    runner.py     judge / judge_many, and the live state they share (JudgeState)

harness, isolation, server, protocol and semantics are stdlib-only: the zygote runs them
as top-level modules and never imports selfdistill. SECURITY.md says what the sandbox
protects against and what it does not.
"""

from selfdistill.judge.runner import (
    STATUSES,
    ExecutionResult,
    SandboxConfig,
    SandboxUnavailable,
    check_sandbox,
    count_tests,
    judge,
    judge_description,
    judge_key,
    judge_many,
)

__all__ = ["STATUSES", "ExecutionResult", "SandboxConfig", "SandboxUnavailable", "check_sandbox",
           "count_tests", "judge", "judge_description", "judge_key",
           "judge_many"]
