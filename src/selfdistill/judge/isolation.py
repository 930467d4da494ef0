"""OS-level isolation of one judged program (stdlib only; run as a top-level module by the
judging zygote). SECURITY.md says what it does and does not cover.

With isolation "namespaces" the forked judging process unshares PID, mount, network, IPC
and UTS namespaces and forks a monitor of ours (PID 1 of the new namespace). The monitor
makes every mount read-only, mounts a fresh /proc, a size-capped tmpfs on /tmp (the only
writable place, and the working directory) and forks the program's process, which takes
its own session, drops to an unprivileged uid of its own with no_new_privs and resource
limits. When that process ends the monitor reports how on the control channel and exits,
and the kernel kills whatever is left in the namespace. Isolation "none" runs the program
directly (--unsafe-no-isolation).
"""

import ctypes
import os
import resource
import signal

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
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={job.scratch_mb}m,mode=1777")
    os.umask(0o022)
    _expose(job.expose)
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


def set_limits(limits):
    for name, value in limits.items():
        if value is not None:
            resource.setrlimit(getattr(resource, name), (value, value))


def enter_sandbox(job, control, result_fd):
    """Returns in the program's process, with the control channel closed there. Above it
    wait two processes of ours: the outer one and a monitor (with namespaces, PID 1 of the
    new PID namespace) that reports on the control channel how the program ended; when the
    monitor exits, the kernel kills whatever is left inside."""
    namespaced = job.isolation == "namespaces"
    _die_with_parent()
    if namespaced:
        try:
            _sys(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
                 "unshare")
        except SandboxError as e:
            control.send(event="sandbox_error", error=str(e))
            os._exit(1)
    monitor = os.fork()
    if monitor:  # outer: wait for the monitor, then leave
        os.close(result_fd)
        os.waitpid(monitor, 0)
        os._exit(0)
    _die_with_parent()
    if namespaced:
        try:
            _setup_mounts(job)
        except (SandboxError, OSError) as e:
            control.send(event="sandbox_error", error=str(e))
            os._exit(1)
    program = os.fork()
    if program == 0:
        _die_with_parent()
        if namespaced:
            _drop_privileges(job.uid)
        else:
            os.chdir(job.scratch)
        return
    os.close(result_fd)  # the monitor writes only to the control channel
    while True:  # reap every orphan until the program itself ends
        pid, status = os.wait()
        if pid == program:
            if os.WIFSIGNALED(status):
                control.send(event="exit", signal=os.WTERMSIG(status))
            else:
                control.send(event="exit", code=os.WEXITSTATUS(status))
            os._exit(0)
