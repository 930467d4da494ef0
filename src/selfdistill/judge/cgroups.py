"""One cgroup per sandbox: memory (shared memory, tmpfs and memfds included), number of
processes and a CPU share are limited for the sandbox as a whole, not per process.

cgroup v2 is used where the unified hierarchy has the memory, pids and cpu controllers and
we may create groups in it; otherwise cgroup v1's memory, pids and cpu hierarchies; where
neither can be written (an ordinary user without delegation), judging goes on with the
per-process rlimits alone and says so once.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
_COUNTER = itertools.count()
_LOCK = threading.Lock()
_STATE: dict[str, object] = {}


def _mounts() -> list[tuple[str, str, str]]:
    with open("/proc/self/mounts") as f:
        return [tuple(line.split()[1:4]) for line in f]  # mount point, type, options


def _writable_dir(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f"probe-{os.getpid()}")
        os.mkdir(probe)
        os.rmdir(probe)
        return True
    except OSError:
        return False


def _detect() -> tuple[str, dict[str, str]] | tuple[None, str]:
    mounts = _mounts()
    for point, kind, _ in mounts:
        if kind != "cgroup2":
            continue
        try:
            with open(os.path.join(point, "cgroup.controllers")) as f:
                available = set(f.read().split())
        except OSError:
            continue
        if {"memory", "pids", "cpu"} <= available:
            base = os.path.join(point, "selfdistill")
            if _writable_dir(base):
                try:
                    with open(os.path.join(point, "cgroup.subtree_control"), "w") as f:
                        f.write("+memory +pids +cpu")
                    with open(os.path.join(base, "cgroup.subtree_control"), "w") as f:
                        f.write("+memory +pids +cpu")
                    return "v2", {"unified": base}
                except OSError:
                    pass
    bases = {}
    for point, kind, options in mounts:
        if kind == "cgroup":
            for controller in ("memory", "pids", "cpu"):
                if controller in options.split(","):
                    bases.setdefault(controller, os.path.join(point, "selfdistill"))
    if len(bases) == 3 and all(_writable_dir(b) for b in bases.values()):
        return "v1", bases
    return None, "no cgroup v2 with memory, pids and cpu delegated to us and no writable cgroup v1"


def backend() -> str:
    """How sandboxes are limited here: "cgroup v2", "cgroup v1" or "rlimits only (why)"."""
    with _LOCK:
        if "kind" not in _STATE:
            kind, info = _detect()
            _STATE["kind"], _STATE["info"] = kind, info
            if kind is None:
                log.warning("judge: %s; memory, process and CPU limits are per process (rlimits), "
                            "not per sandbox", info)
    kind = _STATE["kind"]
    return f"cgroup {kind}" if kind else f"rlimits only ({_STATE['info']})"


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@dataclass
class Cgroup:
    """The groups of one sandbox; `procs` are the files its first process joins through.
    Groups are reused (one per sandbox at a time), so OOM kills count from `baseline`."""

    kind: str
    dirs: list[str]
    procs: list[str] = field(default_factory=list)
    baseline: int = 0

    def oom_kills(self) -> int:
        name = "memory.events" if self.kind == "v2" else "memory.oom_control"
        try:
            with open(os.path.join(self.dirs[0], name)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this sandbox for its memory limit."""
        return self.oom_kills() > self.baseline

    def empty(self) -> bool:
        """No sandbox process left: at most the one nursery process that forks them, listed
        or still counted. A killed process leaves cgroup.procs before the pids controller
        stops counting it (when it is reaped), and a sandbox started in a group still full
        of such processes would have its forks refused (EAGAIN) at pids.max."""
        try:
            for path in self.procs:
                with open(path) as f:
                    if len(f.read().split()) > 1:
                        return False
            pids = self.dirs[1] if self.kind == "v1" else self.dirs[0]  # v1: memory, pids, cpu
            with open(os.path.join(pids, "pids.current")) as f:
                return int(f.read()) <= 1
        except (OSError, ValueError):
            return False

    def remove(self) -> None:
        """Remove the groups once their processes are gone (they were just SIGKILLed)."""
        for d in self.dirs:
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            else:
                log.warning("judge: could not remove cgroup %s", d)


_FREE: dict[tuple[int, int, float], list[Cgroup]] = {}
_ALL: list[Cgroup] = []


def acquire(memory_bytes: int, max_processes: int, cpus: float) -> Cgroup | None:
    """A group with the sandbox's limits and no processes in it: a released one whose
    processes are gone, else a new one. None where cgroups are not available."""
    if backend().startswith("rlimits"):
        return None
    key = (memory_bytes, max_processes, cpus)
    with _LOCK:
        free = _FREE.setdefault(key, [])
        for i, group in enumerate(free):
            if group.empty():
                del free[i]
                group.baseline = group.oom_kills()
                return group
    group = _create(memory_bytes, max_processes, cpus)
    with _LOCK:
        _ALL.append(group)  # removed by runner.STATE.close (at exit), after the zygote has stopped
    return group


def release(group: Cgroup, memory_bytes: int, max_processes: int, cpus: float) -> None:
    """Back to the pool; its processes were just killed and may still be exiting."""
    with _LOCK:
        _FREE.setdefault((memory_bytes, max_processes, cpus), []).append(group)


def remove_all() -> None:
    """Remove every group this process made (at exit, or when SIGTERM ends the evaluator)."""
    with _LOCK:
        groups = list(_ALL)
        _ALL.clear()
        _FREE.clear()  # nothing removed may be handed out again
    for group in groups:
        group.remove()


def _create(memory_bytes: int, max_processes: int, cpus: float) -> Cgroup:
    kind, bases = _STATE["kind"], _STATE["info"]
    name = f"{os.getpid()}-{next(_COUNTER)}"
    period = 100_000
    quota = max(1000, int(period * cpus))
    if kind == "v2":
        d = os.path.join(bases["unified"], name)
        os.mkdir(d)
        _write(os.path.join(d, "memory.max"), str(memory_bytes))
        if os.path.exists(os.path.join(d, "memory.swap.max")):
            _write(os.path.join(d, "memory.swap.max"), "0")
        _write(os.path.join(d, "pids.max"), str(max_processes + 1))  # + the nursery
        _write(os.path.join(d, "cpu.max"), f"{quota} {period}")
        return Cgroup("v2", [d], [os.path.join(d, "cgroup.procs")])
    dirs = {c: os.path.join(bases[c], name) for c in ("memory", "pids", "cpu")}
    for d in dirs.values():
        os.mkdir(d)
    _write(os.path.join(dirs["memory"], "memory.limit_in_bytes"), str(memory_bytes))
    swap = os.path.join(dirs["memory"], "memory.memsw.limit_in_bytes")
    if os.path.exists(swap):
        _write(swap, str(memory_bytes))
    _write(os.path.join(dirs["pids"], "pids.max"), str(max_processes + 1))  # + the nursery
    _write(os.path.join(dirs["cpu"], "cpu.cfs_period_us"), str(period))
    _write(os.path.join(dirs["cpu"], "cpu.cfs_quota_us"), str(quota))
    ordered = [dirs["memory"], dirs["pids"], dirs["cpu"]]
    return Cgroup("v1", ordered, [os.path.join(d, "cgroup.procs") for d in ordered])
