"""The client of the judging zygote (server.py --serve): the preloaded interpreter that
forks one sandbox per program. `spawn` hands it a job's cgroup and file descriptors and
gives the job itself, through a pipe, only to the process forked for it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from selfdistill.errors import SelfdistillError
from selfdistill.judge.policy import ZYGOTE_ENV
from selfdistill.judge.protocol import Job

SERVER = Path(__file__).with_name("server.py")


class Zygote:
    """The preloaded judging interpreter (judge/server.py --serve): one per evaluator
    process, forking a child per program. It exits when our end of its stdin closes."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="selfdistill-zygote-")
        self.path = os.path.join(self.dir, "socket")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(128)
        with open(os.path.join(self.dir, "stderr"), "wb") as log:  # for diagnosing the zygote
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(SERVER), "--serve", str(listener.fileno())],
                stdin=subprocess.PIPE, stderr=log, pass_fds=(listener.fileno(),), cwd="/",
                env=ZYGOTE_ENV, start_new_session=True,
            )
        listener.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self, job: Job, fds: list[int]) -> int:
        """Have the zygote fork the job's process; returns its pid. The zygote gets only the
        job's cgroup (it picks the nursery by it) and the fds; the job itself goes through
        a pipe of its own that only the forked process reads (server.py)."""
        header = json.dumps({"cgroup": job.cgroup}).encode()
        message = struct.pack("!I", len(header)) + header
        job_r, job_w = os.pipe()
        try:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                    conn.connect(self.path)
                    sent = socket.send_fds(conn, [message[: 1 << 16]], [*fds, job_r])
                    if sent < len(message):  # sendall(b"") still calls send(): EPIPE once the zygote is done
                        conn.sendall(message[sent:])
                    reply = b""
                    while len(reply) < 4:
                        chunk = conn.recv(4 - len(reply))
                        if not chunk:
                            raise SelfdistillError("internal judge error: the judging zygote did not answer")
                        reply += chunk
            finally:
                os.close(job_r)
            payload = Job(**{**asdict(job), "cgroup": []}).to_bytes()  # its nursery is in the cgroup already
            try:
                with open(job_w, "wb", closefd=False) as pipe:
                    pipe.write(payload)
            except BrokenPipeError:
                pass  # it died before reading its job: its channels say how
        except OSError as e:
            raise SelfdistillError(f"internal judge error: the judging zygote failed ({e})") from e
        finally:
            os.close(job_w)
        return struct.unpack("!i", reply)[0]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
