"""The checker: everything the evaluator does with a program's output, in a process of its
own with a memory limit, killed when it overruns.

A program's output is untrusted, and so is the work of reading it: parsing its result
lines, decoding its values, rebuilding them into the problem's own classes and comparing
them with the problem's own `__eq__` (a cyclic tree walked breadth first never ends), or
running HumanEval's `check()` on what it returned. In the evaluator any of these could
stop, hang or exhaust the whole run. Here they run in one long-lived process per judging
worker, started with `python -m selfdistill.judge.checker MEMORY_MB` (the address space is
capped at MEMORY_MB), and the evaluator waits for each answer only until the program's
deadline. A checker that overruns is killed and the program gets `timeout`; one that runs
out of memory gets `memory`; one that dies gets `runtime_error`. A new checker serves the
next program. Nothing a program writes reaches the evaluator except the verdict.

The exchange is strictly one answer per request, as length-prefixed frames (4-byte length,
1-byte kind, payload) on the checker's stdin and stdout:

    evaluator -> checker                         checker -> evaluator
    B {problem?, task_id, mode, total}  begin    S {passed, running}   state so far
    L raw result-channel line                    V {status, passed, failure}   the verdict
    E {status, error}  the program ended         C raw line to send to the program (rpc)
                                                 M  another result line, please (rpc)
                                                 X {error}  the checker's own failure

After `V` the program's session is over. In rpc mode (HumanEval) `check()` runs here and
every call of the candidate becomes a `C` that the evaluator forwards into the sandbox;
the program's answer comes back as `L` lines.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

from selfdistill.errors import SelfdistillError
from selfdistill.judge import semantics
from selfdistill.judge.protocol import ProtocolError, parse_event
from selfdistill.judge.referee import Referee, Verdict, humaneval_check
from selfdistill.problems import Problem

_HEADER = struct.Struct("!IB")
MIN_WAIT_S = 2.0  # a check started just before the deadline still gets this long


def _write(out: BinaryIO, kind: bytes, payload: bytes) -> None:
    out.write(_HEADER.pack(len(payload), kind[0]) + payload)
    out.flush()


def _read(inp: BinaryIO) -> tuple[bytes, bytes] | None:
    head = inp.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    length, kind = _HEADER.unpack(head)
    payload = inp.read(length)
    if len(payload) < length:
        return None
    return bytes([kind]), payload


# ---------------------------------------------------------------- the checker process


class _Ended(BaseException):
    """The program ended (or its deadline passed) while rpc's check() waited for it; a
    BaseException, so that the problem's check() cannot catch it."""

    def __init__(self, status: str, error: str):
        super().__init__(status)
        self.status, self.error = status, error


class _MovedOn(BaseException):
    """The evaluator sent the next program's B while this one's check() waited for an
    answer (it gave up on this program: its sandbox failed, say). A BaseException, so
    that the problem's check() cannot catch it; the session ends without a verdict and
    the next one begins with that B."""

    def __init__(self, payload: bytes):
        super().__init__("moved on")
        self.payload = payload


class _Session:
    """One program: its referee, fed line by line; or, in rpc mode, HumanEval's check()."""

    def __init__(self, serve: _Serve, problem: Problem, mode: str, total: int):
        self.serve, self.problem, self.mode, self.total = serve, problem, mode, total
        self.referee = Referee(problem, mode, total)

    def state(self) -> tuple[bytes, dict[str, Any]]:
        return b"S", {"passed": self.referee.passed, "running": self.referee.running}

    def line(self, raw: bytes) -> tuple[bytes, dict[str, Any]]:
        self.referee.feed(parse_event(raw, "result", max(self.total, 1)))
        return self.state()

    def ended(self, status: str, error: str) -> None:
        raise Verdict(status, self.referee.passed, {"i": self.referee.running, "error": error})

    def check(self) -> None:
        """rpc: HumanEval's check(), each call of the candidate answered through the evaluator."""
        humaneval_check(self.problem, self._call)
        raise Verdict("passed", self.total)

    def _call(self, args: tuple) -> Any:
        try:
            message = json.dumps(semantics.encode(args)).encode() + b"\n"
        except semantics.CodecError as e:
            raise Verdict("runtime_error", 0, {"i": 0, "error": f"the test passes a value that cannot be sent: {e}"}) \
                from None
        kind, payload = self.serve.ask(b"C", message)
        while True:
            if kind == b"E":
                ended = json.loads(payload)
                raise _Ended(ended["status"], ended["error"])
            if kind == b"B":
                raise _MovedOn(payload)
            if kind != b"L":
                raise RuntimeError(f"unexpected request {kind!r} during a call")
            try:
                event = parse_event(payload, "result", 1)
            except ProtocolError as e:
                raise Verdict("judge_protocol", 0, {"i": 0, "error": str(e)}) from None
            what = event["event"]
            if what == "return":
                try:
                    return semantics.decode(event["value"])
                except (semantics.CodecError, RecursionError) as e:
                    raise Verdict("judge_protocol", 0, {"i": 0, "error": f"undecodable value: {e}"}) from None
            if what in ("compile", "error"):
                raise Verdict(event["status"], 0, {"i": 0, "error": event.get("error")})
            if what != "start":
                raise Verdict("judge_protocol", 0, {"i": 0, "error": f"event {what} during a call"})
            kind, payload = self.serve.ask(b"M", b"")


class _Serve:
    """The checker process's loop: one request in, one answer out."""

    def __init__(self, inp: BinaryIO, out: BinaryIO):
        self.inp, self.out = inp, out
        self.problems: OrderedDict[str, Problem] = OrderedDict()

    def ask(self, kind: bytes, payload: bytes) -> tuple[bytes, bytes]:
        _write(self.out, kind, payload)
        request = _read(self.inp)
        if request is None:
            sys.exit(0)
        return request

    def answer(self, kind: bytes, data: dict[str, Any]) -> tuple[bytes, bytes]:
        return self.ask(kind, json.dumps(data).encode())

    def loop(self) -> None:
        request = _read(self.inp)
        while request is not None:
            kind, payload = request
            if kind != b"B":
                request = self.answer(b"X", {"error": f"expected a new program, got {kind!r}"})
                continue
            request = self.session(json.loads(payload))

    def session(self, begin: dict[str, Any]) -> tuple[bytes, bytes] | None:
        """Judge one program; returns the next request (the next program's B)."""
        session: _Session | None = None
        try:
            session = _Session(self, self._problem(begin), begin["mode"], begin["total"])
            if session.mode == "rpc":
                try:
                    session.check()
                except _Ended as e:
                    raise Verdict(e.status, 0, {"i": 0, "error": e.error}) from None
            kind, payload = self.answer(*session.state())
            while True:
                if kind == b"L":
                    kind, payload = self.answer(*session.line(payload))
                elif kind == b"E":
                    ended = json.loads(payload)
                    session.ended(ended["status"], ended["error"])
                elif kind == b"B":
                    return kind, payload  # the evaluator moved on (it decided this one itself)
                else:
                    kind, payload = self.answer(b"X", {"error": f"unexpected request {kind!r}"})
        except _MovedOn as m:
            return b"B", m.payload  # never answered: that B is the next program's, not this one's
        except Verdict as v:
            return self._verdict(v.status, v.passed, v.failure)
        except ProtocolError as e:
            passed = session.referee.passed if session else 0
            return self._verdict("judge_protocol", passed, {"i": passed, "error": str(e)})
        except (MemoryError, RecursionError) as e:
            # the program's output (a value too big to rebuild, too deep to compare): its verdict
            passed = session.referee.passed if session else 0
            what = "more memory than the checker's limit" if isinstance(e, MemoryError) else "recursion too deep"
            status = "memory" if isinstance(e, MemoryError) else "runtime_error"
            return self._verdict(status, passed, {"i": passed, "error": f"checking this program's output needed {what}"})
        except Exception as e:  # noqa: BLE001 - the checker's own failure, reported, not fatal
            return self.answer(b"X", {"error": f"{type(e).__name__}: {e}"[:500]})

    def _verdict(self, status: str, passed: int, failure: dict[str, Any] | None) -> tuple[bytes, bytes] | None:
        try:
            payload = json.dumps({"status": status, "passed": passed, "failure": failure}, default=str).encode()
        except ValueError:  # a failure text that does not serialise
            payload = json.dumps({"status": status, "passed": passed, "failure": None}).encode()
        return self.ask(b"V", payload)

    def _problem(self, begin: dict[str, Any]) -> Problem:
        key = begin["task_id"]
        if begin.get("problem") is not None:
            self.problems[key] = Problem.from_json(begin["problem"])
            while len(self.problems) > 64:
                self.problems.popitem(last=False)
        self.problems.move_to_end(key)
        return self.problems[key]


def main() -> None:
    memory_mb = int(sys.argv[1])
    limit = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.set_int_max_str_digits(0)  # a problem's expected output may be a very long integer
    sys.setrecursionlimit(10_000)
    _Serve(sys.stdin.buffer, sys.stdout.buffer).loop()


# ---------------------------------------------------------------- the evaluator's client


class CheckerDied(Exception):
    """The checker overran its deadline (and was killed) or died."""

    def __init__(self, status: str, error: str):
        super().__init__(error)
        self.status, self.error = status, error


class Checker:
    """The evaluator's end: one checker process, restarted after it is killed or dies."""

    def __init__(self, memory_mb: int):
        self.memory_mb = memory_mb
        self.proc: subprocess.Popen | None = None
        self.known: dict[str, Problem] = {}
        self.check_s = MIN_WAIT_S

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            # this interpreter, finding selfdistill where this process found it
            root = str(Path(__file__).resolve().parents[2])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])}
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "selfdistill.judge.checker", str(self.memory_mb)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, env=env)
            self.known = {}
        return self.proc

    def begin(self, problem: Problem, mode: str, total: int, end: float, check_s: float) -> tuple[bytes, Any]:
        """A new program; each answer about it is due within check_s seconds (its per-test
        limit: no check of one test's output may take longer than the test itself)."""
        self._start()
        self.check_s = max(check_s, MIN_WAIT_S)
        data: dict[str, Any] = {"task_id": problem.task_id, "mode": mode, "total": total}
        if self.known.get(problem.task_id) is not problem:
            data["problem"] = problem.to_json()
            self.known[problem.task_id] = problem
        return self.request(b"B", json.dumps(data).encode(), end)

    def line(self, raw: bytes, end: float) -> tuple[bytes, Any]:
        return self.request(b"L", raw, end)

    def ended(self, status: str, error: str, end: float) -> tuple[bytes, Any]:
        return self.request(b"E", json.dumps({"status": status, "error": error}).encode(), end)

    def more(self, end: float) -> tuple[bytes, Any]:
        return self.request(b"M", b"", end)

    def request(self, kind: bytes, payload: bytes, end: float) -> tuple[bytes, Any]:
        """Send one request; the answer (kind, JSON data or raw bytes for C) is due by
        `end` but within check_s (and at least MIN_WAIT_S) from now, else the checker is
        killed: CheckerDied."""
        proc = self._start()
        try:
            _write(proc.stdin, kind, payload)
        except BrokenPipeError:
            self._reap()
            raise CheckerDied("runtime_error", "the checker of this program's output died") from None
        now = time.monotonic()
        reply = _read_by(proc.stdout, max(min(end, now + self.check_s), now + MIN_WAIT_S))
        if reply is None:
            timed_out = proc.poll() is None
            self._reap()
            if timed_out:
                raise CheckerDied("timeout", "checking this program's output ran past the time limit")
            raise CheckerDied("memory" if proc.returncode == -9 else "runtime_error",
                              f"the checker of this program's output died (exit {proc.returncode})")
        kind, payload = reply
        if kind == b"X":
            raise SelfdistillError(f"internal judge error (not the program's fault): {json.loads(payload)['error']}")
        return kind, (payload if kind == b"C" else json.loads(payload) if payload else None)

    def abandon(self) -> None:
        """The evaluator gave up on the program this checker is judging (its sandbox failed
        to start, the judge itself failed): the checker may still be inside that program's
        session, waiting for a line, so the next program gets a fresh checker and no
        answer meant for one program is ever read as another's."""
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self.proc = None

    def close(self) -> None:
        self._reap()
        with _OPEN_LOCK:
            _OPEN.discard(self)


def _read_by(stream: BinaryIO, end: float) -> tuple[bytes, bytes] | None:
    """One frame from the checker, or None at EOF or once `end` passes."""
    import selectors

    fd = stream.fileno()
    buf = bytearray()
    need = _HEADER.size
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            while len(buf) < need:
                remaining = end - time.monotonic()
                if remaining <= 0 or not sel.select(timeout=remaining):
                    return None
                chunk = os.read(fd, max(need - len(buf), 1 << 16))
                if not chunk:
                    return None
                buf.extend(chunk)
            length, kind = _HEADER.unpack(bytes(buf[: _HEADER.size]))
            if len(buf) >= _HEADER.size + length:
                return bytes([kind]), bytes(buf[_HEADER.size: _HEADER.size + length])
            need = _HEADER.size + length


_LOCAL = threading.local()
_OPEN: set[Checker] = set()  # every checker process still running, closed at exit at the latest
_OPEN_LOCK = threading.Lock()


def checker_for_thread(memory_mb: int) -> Checker:
    """This thread's checker (each of judge_many's workers keeps one for its programs)."""
    checker = getattr(_LOCAL, "checker", None)
    if checker is None or checker.memory_mb != memory_mb:
        if checker is not None:
            checker.close()
        checker = _LOCAL.checker = Checker(memory_mb)
        with _OPEN_LOCK:
            _OPEN.add(checker)
    return checker


@atexit.register
def close_all() -> None:
    with _OPEN_LOCK:
        checkers = list(_OPEN)
    for checker in checkers:
        checker.close()


if __name__ == "__main__":
    main()
