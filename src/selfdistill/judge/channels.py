"""The evaluator's ends of one sandbox's pipes, read together under caps: a program can
fill them, never overrun them. Nothing read here is interpreted but our own control
channel; result lines go to the checker raw."""

from __future__ import annotations

import os
import selectors
import time
from typing import Any

from selfdistill.judge.protocol import ProtocolError, parse_event


class Deadline(Exception):
    """The time given to a read or a write ran out."""


class Channels:
    """The read ends of one sandbox's control, result, stdout and stderr pipes and the
    write end of its request pipe, drained together with caps: a result line may be at
    most `line_cap` bytes and the result channel `result_cap` in all; stdout and stderr
    keep their first `raw_cap` bytes; the control channel (ours) 64 KiB."""

    CONTROL_CAP = 1 << 16

    def __init__(self, fds: dict[str, int], tests: int, line_cap: int, result_cap: int, raw_cap: int):
        self.fds, self.tests = fds, tests
        self.line_cap, self.result_cap, self.raw_cap = line_cap, result_cap, raw_cap
        self.sel = selectors.DefaultSelector()
        self.partial = {"control": bytearray(), "result": bytearray()}
        self.read = {"control": 0, "result": 0}
        self.raw = {"stdout": bytearray(), "stderr": bytearray()}
        self.ready: list[tuple[str, dict[str, Any]]] = []
        self.open = set()
        for name in ("control", "result", "stdout", "stderr"):
            os.set_blocking(fds[name], False)
            self.sel.register(fds[name], selectors.EVENT_READ, name)
            self.open.add(name)

    def _pump(self, end: float) -> None:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise Deadline()
        for key, _ in self.sel.select(timeout=min(remaining, 1.0)):
            name = key.data
            try:
                chunk = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                self.sel.unregister(key.fd)
                self.open.discard(name)
                continue
            if name in self.raw:
                buf = self.raw[name]
                if len(buf) < self.raw_cap:
                    buf.extend(chunk[: self.raw_cap - len(buf)])
                continue
            self.read[name] += len(chunk)
            cap = self.CONTROL_CAP if name == "control" else self.result_cap
            if self.read[name] > cap:
                raise ProtocolError(f"more than {cap} bytes on the {name} channel")
            buf = self.partial[name]
            buf.extend(chunk)
            *lines, rest = bytes(buf).split(b"\n")
            self.partial[name] = bytearray(rest)
            if len(rest) > self.line_cap:
                raise ProtocolError(f"a line of more than {self.line_cap} bytes on the {name} channel")
            for line in lines:
                if name == "control":
                    self.ready.append((name, parse_event(line, name, self.tests)))
                else:
                    self.ready.append((name, line))  # parsed when consumed, in order

    def next_event(self, end: float) -> tuple[str, dict[str, Any]] | None:
        """The next event: control events as they come (parsed: they are ours), result
        lines in order and raw (the checker reads them), or None once both channels are
        closed and drained."""
        while True:
            for k, (name, item) in enumerate(self.ready):
                if name == "control":
                    del self.ready[k]
                    return name, item
            if self.ready:
                name, line = self.ready.pop(0)
                if len(line) > self.line_cap:
                    raise ProtocolError(f"a line of more than {self.line_cap} bytes on the result channel")
                return name, line  # raw: the checker parses what the program wrote
            if not ({"control", "result"} & self.open):
                return None
            self._pump(end)

    def send(self, data: bytes, end: float) -> None:
        fd = self.fds["requests"]
        view = memoryview(data)
        while view:
            _, writable, _ = select_write(fd, end)
            if writable:
                try:
                    n = os.write(fd, view)
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    return  # the program is gone; its end shows on the channels
                view = view[n:]

    def stderr(self) -> str:
        return bytes(self.raw["stderr"]).decode("utf-8", "replace")[-2000:]

    def close(self) -> None:
        self.sel.close()


def select_write(fd: int, end: float):
    import select

    remaining = end - time.monotonic()
    if remaining <= 0:
        raise Deadline()
    return select.select([], [fd], [], min(remaining, 1.0))
