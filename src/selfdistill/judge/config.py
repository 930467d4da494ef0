"""What a judging run is asked for and what it answers: the limits (`SandboxConfig`), the
verdict of one program (`ExecutionResult`, one of `STATUSES`), and the error raised when
isolation cannot be set up. No process, no state: runner.py does the work."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.problems import Problem

STATUSES = ("passed", "failed", "timeout", "memory", "runtime_error", "syntax_error", "no_code",
            "judge_protocol", "judge_error")


@dataclass
class SandboxConfig:
    """Limits for each judged program; every field is recorded with the results."""

    timeout_s: int = field(default=6, metadata={"help": "per-test time limit (LiveCodeBench: 6 s)"})
    memory_mb: int = field(default=4096, metadata={"help": "address-space limit per program"})
    output_cap_bytes: int = field(default=4 << 20, metadata={
        "help": "output kept per test, the same for every test (never derived from the expected output)"})
    file_size_mb: int = field(default=64, metadata={"help": "largest file a program may write"})
    open_files: int = field(default=256, metadata={"help": "open file descriptor limit"})
    workers: int = field(default=0, metadata={"help": "programs judged at once (0: CPU count)"})
    max_processes: int = field(default=64, metadata={"help": "processes per sandbox (namespaces)"})
    scratch_mb: int = field(default=64, metadata={"help": "size of the writable tmpfs (namespaces)"})
    isolation: str = field(default="namespaces", metadata={
        "help": "namespaces (OS-level sandbox) | none (process limits only; unsafe)"})
    seccomp: str = field(default="auto", metadata={
        "help": "syscall filter: auto (where pyseccomp is installed, else a warning) | on | off"})
    cpus: float = field(default=1.0, metadata={
        "help": "CPU share of each sandbox, in cores (cgroup), so a busy program cannot starve others"})
    packages: list[str] = field(default_factory=lambda: ["numpy"], metadata={
        "help": "installed packages programs may import besides the standard library "
                "(LiveCodeBench's judge has numpy)"})

    def __post_init__(self) -> None:
        if self.isolation not in ("namespaces", "none"):
            raise ValueError("sandbox.isolation must be namespaces or none")
        for name in ("timeout_s", "memory_mb", "output_cap_bytes", "file_size_mb", "open_files",
                     "max_processes", "scratch_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sandbox.{name} must be positive")
        if self.workers < 0:
            raise ValueError("sandbox.workers must be >= 0")
        if self.seccomp not in ("auto", "on", "off"):
            raise ValueError("sandbox.seccomp must be auto, on or off")
        if self.cpus <= 0:
            raise ValueError("sandbox.cpus must be positive")

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass
class ExecutionResult:
    """The verdict on one program: status, tests passed of total, and the first failure.
    `decided` says where: "evaluator" (from raw outputs, the default) or "sandbox" (test
    code that could not be split ran beside the program)."""

    status: str
    passed: int = 0
    total: int = 0
    first_failure: dict[str, Any] | None = None
    wall_s: float = 0.0
    stderr: str = ""
    decided: str = "evaluator"

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def count_tests(problem: Problem) -> int:
    if problem.tests:
        return len(problem.tests)
    return problem.metadata.get("test_cases", 1)  # leetcode: its cases; HumanEval: one check()


class SandboxUnavailable(SelfdistillError):
    """Isolation was asked for and could not be set up."""
