"""The job record the evaluator sends into a sandbox, and the events that come back
(stdlib only; the judging zygote runs this file as a top-level module).

Two channels come out of every sandbox:
  control  written only by our own processes (the sandbox set-up and the monitor that
           reports how the program ended); the program's process closes its end before
           the candidate's code runs, so the program cannot write to it.
  result   written by the harness beside the candidate, so the candidate can write to it
           too. It carries raw outputs only (a test's stdout, a return value), never a
           verdict, and everything read from it is size-capped and validated here; a line
           that does not parse as one of these events is a `judge_protocol` failure of
           that program, never an exception in the evaluator.
"""

import json
from dataclasses import asdict, dataclass, field

MODES = ("stdio", "call", "split", "rpc", "script")
PROGRAM_STATUSES = ("failed", "timeout", "memory", "runtime_error")
COMPILE_STATUSES = ("syntax_error", "timeout", "memory", "runtime_error")
RESULT_EVENTS = ("start", "output", "return", "error", "compile", "passed", "done")
CONTROL_EVENTS = ("ready", "exit", "sandbox_error", "harness_error")
TEXT_LIMIT = 2000  # characters of an error message that are kept


@dataclass
class Job:
    """Everything a sandbox gets: the program, the tests' inputs (never their expected
    outputs), the limits and the isolation settings."""

    mode: str
    code: str
    timeout: int
    isolation: str
    tests: list = field(default_factory=list)  # stdio: stdin texts; call: JSON-lines args; split: cases
    output_caps: list = field(default_factory=list)  # stdio: characters of stdout kept per test
    fn_name: str | None = None  # call: method name; rpc: the function the tests call
    prelude: str = ""  # script/split: definitions the problem provides, run before the code
    test_code: str = ""  # script/split: the test module (split: only the parts that call the code)
    classes: list = field(default_factory=list)  # names of the problem's classes values may carry
    lcb: bool = False  # LiveCodeBench's environment (import prelude, patched stdin, its guard)
    rlimits: dict = field(default_factory=dict)
    uid: int = 0
    scratch_mb: int = 64
    expose: list = field(default_factory=list)  # host paths the sandbox sees (read-only)
    hide: list = field(default_factory=list)  # directories under them covered by an empty tmpfs
    scratch: str | None = None  # isolation none: the working directory
    cgroup: list = field(default_factory=list)  # cgroup.procs files the sandbox joins first
    seccomp: bool = False  # namespaces: load the syscall filter before the program runs

    def to_bytes(self):
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data):
        return cls(**json.loads(data))


class ProtocolError(Exception):
    """A line on a channel that is not a well-formed event."""


def parse_event(line, channel, tests):
    """One line of `channel` ("result" or "control") as a validated event dict."""
    try:
        event = json.loads(line)
    except (ValueError, RecursionError) as e:  # bad JSON, a 5,000-digit number, nesting
        raise ProtocolError(f"unreadable line on the {channel} channel ({type(e).__name__})") from None
    if type(event) is not dict or type(event.get("event")) is not str:
        raise ProtocolError(f"a {channel} line that is not an event")
    kind = event["event"]
    if kind not in (RESULT_EVENTS if channel == "result" else CONTROL_EVENTS):
        raise ProtocolError(f"event {kind[:40]!r} on the {channel} channel")
    if kind in ("start", "output", "return", "error", "passed"):
        i = event.get("i")
        if type(i) is not int or not 0 <= i < tests:
            raise ProtocolError(f"{kind} event without a valid test index")
    for name in ("error", "text"):
        if name in event and type(event[name]) is not str:
            raise ProtocolError(f"{kind} event with a non-text {name}")
    if "error" in event:
        event["error"] = event["error"][:TEXT_LIMIT]
    if kind == "output" and "text" not in event:
        raise ProtocolError("output event without text")
    if kind == "return" and "value" not in event:
        raise ProtocolError("return event without a value")
    if kind == "error" and event.get("status") not in PROGRAM_STATUSES:
        raise ProtocolError("error event with an unknown status")
    if kind == "compile" and event.get("status") not in COMPILE_STATUSES:
        raise ProtocolError("compile event with an unknown status")
    if kind == "exit":
        for name in ("code", "signal"):
            if name in event and type(event[name]) is not int:
                raise ProtocolError("malformed exit event")
    return event
