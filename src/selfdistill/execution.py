"""Running model-written programs against a problem's tests.

`judge(problem, code, config)` runs one program in its own process (see judge_child.py
for the semantics of each problem kind) and returns an `ExecutionResult`;
`judge_many` does the same for many programs in parallel, with a progress bar.

What a judging process gets:
  - a fresh interpreter (`python -I`) in its own session and process group, killed as a
    group at the end, with an environment of PATH/LANG/HOME only (no inherited secrets);
  - resource limits set before the candidate runs: address space, CPU seconds, file size,
    open files, processes; a per-test alarm and a wall-clock deadline for the whole sample;
  - captured output capped (in-process for judged stdout, in the parent for raw fds);
  - with isolation "namespaces" (the default) its own PID, mount, network, IPC and UTS
    namespaces, a read-only view of the host, a size-capped tmpfs as its only writable
    place, and an unprivileged uid of its own (judge_child.py; SECURITY.md says what
    this does and does not protect). Where that cannot be set up, judging refuses to run
    unless isolation is "none" (--unsafe-no-isolation).
The evaluator kills every live sandbox when it receives SIGTERM.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.problems import Problem, TestCase

CHILD = Path(__file__).with_name("judge_child.py")
_LIVE: set[int] = set()  # process groups of running sandboxes, for the SIGTERM handler
_LIVE_LOCK = threading.Lock()
STATUSES = ("passed", "failed", "timeout", "memory", "runtime_error", "syntax_error", "no_code")


@dataclass
class SandboxConfig:
    """Limits for each judged program; every field is recorded with the results."""

    timeout_s: int = field(default=6, metadata={"help": "per-test time limit (LiveCodeBench: 6 s)"})
    memory_mb: int = field(default=4096, metadata={"help": "address-space limit per program"})
    output_cap_bytes: int = field(default=1 << 20, metadata={"help": "captured output cap"})
    file_size_mb: int = field(default=64, metadata={"help": "largest file a program may write"})
    open_files: int = field(default=256, metadata={"help": "open file descriptor limit"})
    workers: int = field(default=0, metadata={"help": "programs judged at once (0: CPU count)"})
    max_processes: int = field(default=64, metadata={"help": "processes per sandbox (namespaces)"})
    scratch_mb: int = field(default=64, metadata={"help": "size of the writable tmpfs (namespaces)"})
    isolation: str = field(default="namespaces", metadata={
        "help": "namespaces (OS-level sandbox) | none (process limits only; unsafe)"})

    def __post_init__(self) -> None:
        if self.isolation not in ("namespaces", "none"):
            raise ValueError("sandbox.isolation must be namespaces or none")
        for name in ("timeout_s", "memory_mb", "output_cap_bytes", "file_size_mb", "open_files",
                     "max_processes", "scratch_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sandbox.{name} must be positive")
        if self.workers < 0:
            raise ValueError("sandbox.workers must be >= 0")

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass
class ExecutionResult:
    """The verdict on one program: status, tests passed of total, and the first failure."""

    status: str
    passed: int = 0
    total: int = 0
    first_failure: dict[str, Any] | None = None
    wall_s: float = 0.0
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def build_job(problem: Problem, code: str, config: SandboxConfig) -> dict[str, Any]:
    """The child's instructions for one program; which mode follows from the problem."""
    job: dict[str, Any] = {"code": code, "timeout": config.timeout_s}
    job["output_cap"] = config.output_cap_bytes
    job["isolation"] = config.isolation
    if config.isolation == "namespaces":
        job.update(uid_base=SANDBOX_UID_BASE, scratch_mb=config.scratch_mb, expose=_interpreter_paths())
    if problem.kind == "humaneval":
        job.update(mode="script", same_namespace=True, test_code=problem.test_code)
        job["code"] = problem.starter_code + "\n" + code
    elif problem.test_code:
        job.update(mode="script", lcb_imports=True, test_code=problem.test_code)
        job["prelude"] = problem.metadata.get("prelude", "")
    elif problem.kind == "stdin":
        job.update(mode="stdio", tests=[asdict(t) for t in problem.tests])
    else:
        job.update(mode="call", fn_name=problem.fn_name, tests=[asdict(t) for t in problem.tests])
    return job


def count_tests(problem: Problem) -> int:
    if problem.tests:
        return len(problem.tests)
    return problem.metadata.get("test_cases", 1)  # leetcode: its cases; HumanEval: one check()


SANDBOX_UID_BASE = 100_000  # sandbox uid = this + the sandbox's host pid (unique while alive)


@functools.cache
def _interpreter_paths() -> list[str]:
    """What the unprivileged program must be able to read: the interpreter and libraries."""
    paths = {sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p)
    return sorted(paths)


def _rlimits(config: SandboxConfig) -> dict[str, int]:
    mib = 1 << 20
    limits = {
        "RLIMIT_AS": config.memory_mb * mib,
        "RLIMIT_FSIZE": config.file_size_mb * mib,
        "RLIMIT_NOFILE": config.open_files,
        "RLIMIT_CORE": 0,
    }
    if config.isolation == "namespaces":  # per-uid, so only meaningful with a uid of its own
        limits["RLIMIT_NPROC"] = config.max_processes
    return limits


# The zygote's (and so every program's) whole environment: nothing inherited from ours.
_ZYGOTE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp",
               "TMPDIR": "/tmp", "OMP_NUM_THREADS": "1"}


def judge(problem: Problem, code: str | None, config: SandboxConfig) -> ExecutionResult:
    """Run `code` against `problem`'s tests. `None` or empty code is status `no_code`."""
    total = count_tests(problem)
    if not code or not code.strip():
        return ExecutionResult("no_code", 0, total)
    job = build_job(problem, code, config)
    deadline = (config.timeout_s + 1) * total + 5  # LiveCodeBench's global timeout
    job["rlimits"] = _rlimits(config) | {"RLIMIT_CPU": deadline + 1}
    start = time.monotonic()
    events, stderr, timed_out = _run_child(job, config, deadline)
    result = _verdict(events, total, timed_out)
    result.wall_s = round(time.monotonic() - start, 3)
    result.stderr = stderr.decode("utf-8", "replace")[-2000:]
    return result


class _Zygote:
    """The preloaded judging interpreter (judge_child.py --serve): one per evaluator
    process, forking a child per program. It exits when our end of its stdin closes."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="selfdistill-zygote-")
        self.path = os.path.join(self.dir, "socket")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(128)
        with open(os.path.join(self.dir, "stderr"), "wb") as log:  # for diagnosing the zygote
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(CHILD), "--serve", str(listener.fileno())],
                stdin=subprocess.PIPE, stderr=log, pass_fds=(listener.fileno(),), cwd="/",
                env=_ZYGOTE_ENV, start_new_session=True,
            )
        listener.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self, job: dict[str, Any], fds: list[int]) -> int:
        payload = json.dumps(job).encode()
        message = struct.pack("!I", len(payload)) + payload
        try:
            return self._send(message, fds)
        except OSError as e:
            raise SelfdistillError(f"internal judge error: the judging zygote failed ({e})") from e

    def _send(self, message: bytes, fds: list[int]) -> int:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.path)
            sent = socket.send_fds(conn, [message[: 1 << 16]], fds)
            if sent < len(message):  # sendall(b"") still calls send(): EPIPE once the zygote is done
                conn.sendall(message[sent:])
            reply = b""
            while len(reply) < 4:
                chunk = conn.recv(4 - len(reply))
                if not chunk:
                    raise SelfdistillError("internal judge error: the judging zygote did not answer")
                reply += chunk
        return struct.unpack("!i", reply)[0]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


_ZYGOTE: _Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def _zygote() -> _Zygote:
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is None or not _ZYGOTE.alive():
            _ZYGOTE = _Zygote()
            atexit.register(_ZYGOTE.close)
        return _ZYGOTE


def _run_child(job: dict[str, Any], config: SandboxConfig, deadline: float):
    scratch = None
    if config.isolation == "none":
        scratch = job["scratch"] = tempfile.mkdtemp(prefix="selfdistill-judge-")
    pipes = [os.pipe() for _ in range(3)]  # result events, stdout, stderr
    reads = [r for r, _ in pipes]
    try:
        try:
            pgid = _zygote().spawn(job, [w for _, w in pipes])
        finally:
            for _, w in pipes:
                os.close(w)
        with _LIVE_LOCK:
            _LIVE.add(pgid)
        bufs, timed_out = _collect(reads, config.output_cap_bytes, deadline)
        _kill_group(pgid)
    finally:
        for r in reads:
            os.close(r)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    events = []
    for line in bufs[0].decode("utf-8", "replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a partial last line from a killed child
    return events, bufs[2], timed_out


def _collect(fds: list[int], cap: int, deadline: float) -> tuple[list[bytes], bool]:
    """Drain the result pipe, stdout and stderr until EOF or the deadline. The result pipe
    (ours, small) is kept whole up to a generous bound; the program's own fds are capped."""
    sel = selectors.DefaultSelector()
    buffers = {fd: bytearray() for fd in fds}
    limits = {fd: (64 * cap if i == 0 else cap) for i, fd in enumerate(fds)}
    for fd in fds:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    end = time.monotonic() + deadline
    timed_out = False
    while sel.get_map():
        remaining = end - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        for key, _ in sel.select(timeout=min(remaining, 1.0)):
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(key.fd)
                continue
            buf = buffers[key.fd]
            if len(buf) < limits[key.fd]:
                buf.extend(chunk[: limits[key.fd] - len(buf)])
    sel.close()
    return [bytes(buffers[fd]) for fd in fds], timed_out


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    with _LIVE_LOCK:
        _LIVE.discard(pgid)


def _terminate_sandboxes(signum: int, frame: Any) -> None:
    """SIGTERM to the evaluator takes every running sandbox down with it."""
    with _LIVE_LOCK:
        for pgid in list(_LIVE):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    if _ZYGOTE is not None:
        _ZYGOTE.close()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def check_sandbox(config: SandboxConfig) -> None:
    """Fail fast, with one clear line, when isolation cannot be set up here."""
    probe = Problem("probe", "", "stdin", tests=[TestCase("", "ok")])
    result = judge(probe, "print('ok')", config)
    if not result.ok:
        raise SandboxUnavailable(f"the sandbox probe failed: {result.first_failure}")


class SandboxUnavailable(SelfdistillError):
    """Isolation was asked for and could not be set up."""


def _verdict(events: list[dict[str, Any]], total: int, timed_out: bool) -> ExecutionResult:
    passed = 0
    returncode = 0
    running = None
    for ev in events:
        kind = ev.get("event")
        if kind == "sandbox_error":
            raise SandboxUnavailable(
                f"cannot set up the OS sandbox ({ev.get('error')}); it needs root (or CAP_SYS_ADMIN) "
                "and namespace support; --unsafe-no-isolation runs programs without it")
        if kind == "harness_error":
            raise SelfdistillError(f"internal judge error (not the program's fault): {ev.get('error')}")
        if kind == "exit":  # the sandbox's init saw the program end without finishing
            returncode = -ev["signal"] if "signal" in ev else ev.get("code", 1)
            continue
        if kind == "compile":
            return ExecutionResult(ev["status"], 0, total, {"error": ev.get("error")})
        if kind == "start":
            running = ev["i"]
        elif kind == "result":
            running = None
            if ev["status"] == "passed":
                passed += 1
                continue
            failure = {k: ev.get(k) for k in ("i", "input", "expected", "actual", "error")}
            return ExecutionResult(ev["status"], passed, total, failure)
        elif kind == "done":
            return ExecutionResult("passed" if passed == total else "failed", passed, total)
    # the child died or was killed before reporting "done"
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGALRM):
        status, error = "timeout", "wall-clock limit exceeded"
    elif returncode == -signal.SIGKILL:  # RLIMIT_AS gives MemoryError; SIGKILL is self-inflicted or OOM
        status, error = "runtime_error", "killed by SIGKILL (by the program itself or the OOM killer)"
    elif returncode < 0:
        status, error = "runtime_error", f"killed by signal {-returncode}"
    else:
        status, error = "runtime_error", f"program exited with code {returncode} before finishing"
    return ExecutionResult(status, passed, total, {"i": running, "error": error})


def judge_many(
    items: list[tuple[Problem, str | None]], config: SandboxConfig, progress: bool = True
) -> list[ExecutionResult]:
    """Judge (problem, code) pairs in parallel; results come back in input order."""
    from tqdm.auto import tqdm

    check_sandbox(config)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_sandboxes)
    with ThreadPoolExecutor(max_workers=config.resolved_workers()) as pool:
        futures = [pool.submit(judge, p, c, config) for p, c in items]
        bar = tqdm(total=len(futures), desc="judging", unit="prog", disable=not progress)
        results = []
        for fut in futures:
            results.append(fut.result())
            bar.update(1)
        bar.close()
    return results
