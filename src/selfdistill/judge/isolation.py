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
import errno
import os
import resource
import signal

try:  # imported here, in the zygote: the sandbox's root does not have site-packages
    import pyseccomp as seccomp
except (ImportError, OSError):  # no pyseccomp, or no libseccomp.so.2
    seccomp = None

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUSER = 0x20000000, 0x40000000, 0x10000000
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


def die_with_parent():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


PR_SET_CHILD_SUBREAPER = 36


def reap_orphans():
    """Make this process the reaper of its descendants' orphans. A killed sandbox's monitor
    outlives its parent for a moment and is re-parented; without this it went to the
    machine's PID 1, which need not reap it (a container's init often does not), and every
    such zombie stayed charged to the sandbox's cgroup until pids.max refused all forks
    (EAGAIN). With SIGCHLD ignored here, the kernel reaps them at once."""
    _sys(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


MNT_DETACH = 2
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}  # the syscall has no libc wrapper


def _bind(path, root, readonly=True):
    """Make host `path` visible at the same path under `root` (a symlink as a symlink)."""
    target = root + path
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    if os.path.islink(path):  # /bin -> usr/bin on merged-/usr systems
        os.symlink(os.readlink(path), target)
        return
    if os.path.isdir(path):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        open(target, "w").close()  # noqa: SIM115 - a mount point for a file
    _mount(path, target, None, MS_BIND | MS_REC)
    if readonly:  # (a device node keeps the flags of its own mount: nosuid, noexec)
        flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_RDONLY | MS_NODEV
        _mount(None, target, None, flags | _locked_flags(path))


# statvfs flag -> mount flag, for the flags a user namespace may not clear on a bind remount
_LOCKED = {os.ST_RDONLY: MS_RDONLY, os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV,
           os.ST_NOEXEC: MS_NOEXEC, os.ST_NOATIME: 1024, os.ST_NODIRATIME: 2048,
           os.ST_RELATIME: 1 << 21}


def _locked_flags(path):
    """The source mount's own restrictions, kept (a user namespace must keep them)."""
    have = os.statvfs(path).f_flag
    return sum(ms for st, ms in _LOCKED.items() if have & st)


def _setup_mounts(job):
    """A new root with only what programs need, then pivot into it: the interpreter and
    standard library, system libraries, the allowed packages (job.expose), a few device
    nodes, a fresh /proc and a size-capped tmpfs at /tmp; everything read-only but /tmp and
    /dev/shm. The host's filesystem (the project, home directories, problem files, /var,
    /run and their sockets) is not in the sandbox's mount namespace at all."""
    import platform

    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do propagates to the host
    root = "/tmp"  # only the mount point of the new root: nothing of the host's /tmp shows
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    os.umask(0o022)
    exposed = sorted(set(job.expose))
    for path in exposed:  # a path inside another one comes with it (a recursive bind)
        if os.path.lexists(path) and not any(path.startswith(p + "/") for p in exposed):
            _bind(path, root)
    for mask in job.hide:  # e.g. the base interpreter's own site-packages inside its stdlib
        if os.path.isdir(root + mask):
            _mount("tmpfs", root + mask, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555")
    for dev in ("null", "zero", "full", "random", "urandom"):
        _bind("/dev/" + dev, root, readonly=False)
    for d in ("proc", "tmp", "dev/shm", ".old"):
        os.makedirs(f"{root}/{d}", mode=0o755, exist_ok=True)
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={job.scratch_mb}m,mode=1777")
    _mount("tmpfs", root + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=1777")
    # a fresh /proc for this PID namespace; before the host's root goes, because a user
    # namespace may mount proc only where a fully visible one is already mounted
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise SandboxError(f"pivot_root: unknown architecture {platform.machine()}")
    _sys(_libc.syscall(number, root.encode(), (root + "/.old").encode()), "pivot_root")
    os.chdir("/")
    _sys(_libc.umount2(b"/.old", MNT_DETACH), "umount the host root")
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if not os.statvfs("/").f_flag & os.ST_RDONLY:
        raise SandboxError("the root filesystem is still writable inside the sandbox")


def _drop_privileges(uid, user_namespace):
    """Root: become `uid`, a uid of this sandbox's own. In a user namespace (no root on the
    host) only our own uid is mapped, so stay it and drop every capability instead."""
    os.setsid()
    if user_namespace:
        _drop_capabilities()
    else:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    _sys(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.chdir("/tmp")


PR_CAPBSET_DROP, _LINUX_CAPABILITY_VERSION_3 = 24, 0x20080522


def _drop_capabilities():
    for cap in range(64):  # the bounding set first (needs CAP_SETPCAP, which we still hold)
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: all empty
    _sys(_libc.capset(header, data), "capset")


def _map_user(uid, gid):
    """In a fresh user namespace: this process is root there, and our own uid outside."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


# What no judged program needs and what widens the kernel surface or lets a sandbox leave
# traces for the next one: refused with EPERM (clone3 with ENOSYS, so that libc falls back
# to clone, whose namespace flags can be checked).
DENIED_SYSCALLS = (
    "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "perf_event_open",
    "keyctl", "add_key", "request_key", "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "userfaultfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot", "acct",
    "quotactl", "syslog", "fanotify_init", "lookup_dcookie", "personality",
)
# CLONE_NEWUSER, NEWPID, NEWNET, NEWUTS, NEWIPC, NEWNS, NEWCGROUP
NAMESPACE_FLAGS = (0x10000000, 0x20000000, 0x40000000, 0x04000000, 0x08000000, 0x00020000, 0x02000000)


_FILTER = []  # the compiled filter program (BPF), built once in the zygote


def prepare_seccomp():
    """Build the filter with libseccomp (through pyseccomp) once and keep its BPF program,
    so that each sandbox only loads it."""
    if seccomp is None:
        return
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            f.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (OSError, ValueError):  # not a syscall on this architecture
            pass
    try:
        f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    except (OSError, ValueError):
        pass
    for flag in NAMESPACE_FLAGS:  # clone(2) may not make namespaces either
        f.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    r, w = os.pipe()
    try:
        f.export_bpf(type("Fd", (), {"fileno": lambda self: w})())
        os.close(w)
        w = -1
        chunks = []
        while chunk := os.read(r, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    _FILTER.append(b"".join(chunks))


PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def apply_seccomp():
    """Load the prepared filter in the program's process, after no_new_privs and before
    the candidate runs. Returns False where pyseccomp/libseccomp are not installed."""
    if not _FILTER:
        return False
    program = _FILTER[0]
    prog = _SockFprog(len(program) // 8, program)  # struct sock_filter is 8 bytes
    _sys(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")
    return True


def set_limits(limits):
    for name, value in limits.items():
        if value is not None:
            resource.setrlimit(getattr(resource, name), (value, value))


def _unshare():
    """New mount, PID, network, IPC and UTS namespaces: directly as root with CAP_SYS_ADMIN,
    else owned by a new unprivileged user namespace (an ordinary user, or root in a
    container without CAP_SYS_ADMIN). Returns whether a user namespace was needed."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if os.geteuid() == 0:
        if _libc.unshare(flags) == 0:
            return False
        if ctypes.get_errno() != errno.EPERM:
            _sys(-1, "unshare")
    uid, gid = os.geteuid(), os.getegid()
    _sys(_libc.unshare(flags | CLONE_NEWUSER),
         "unshare (no CAP_SYS_ADMIN, and no unprivileged user namespace either)")
    _map_user(uid, gid)
    return True


def enter_sandbox(job, control, result_fd):
    """Returns in the program's process (whether a user namespace was needed). Above it
    wait two processes of ours: the outer one and a monitor (with namespaces, PID 1 of the
    new PID namespace) that reports on the control channel how the program ended; when the
    monitor exits, the kernel kills whatever is left inside."""
    namespaced = job.isolation == "namespaces"
    user_namespace = False
    die_with_parent()
    if namespaced:
        try:
            user_namespace = _unshare()
        except (SandboxError, OSError) as e:
            control.send(event="sandbox_error", error=str(e))
            os._exit(1)
    monitor = os.fork()
    if monitor:  # outer: wait for the monitor, then leave
        os.close(result_fd)
        os.waitpid(monitor, 0)
        os._exit(0)
    die_with_parent()
    if namespaced:
        try:
            _setup_mounts(job)
        except (SandboxError, OSError) as e:
            control.send(event="sandbox_error", error=str(e))
            os._exit(1)
    program = os.fork()
    if program == 0:
        die_with_parent()
        if namespaced:
            _drop_privileges(job.uid, user_namespace)
        else:
            os.chdir(job.scratch)
        return user_namespace
    os.close(result_fd)  # the monitor writes only to the control channel
    while True:  # reap every orphan until the program itself ends
        pid, status = os.wait()
        if pid == program:
            if os.WIFSIGNALED(status):
                control.send(event="exit", signal=os.WTERMSIG(status))
            else:
                control.send(event="exit", code=os.WEXITSTATUS(status))
            os._exit(0)
