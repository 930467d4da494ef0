"""What a verdict means, as pure functions (stdlib only; imported by the evaluator and by the
judging zygote, which runs this file as a top-level module).

- LiveCodeBench's code transforms (`clean_if_name`, `make_function`, its import prelude)
  and its comparisons: stdin programs line by line, stripped, then as exact Decimals;
  functional ones with `==` after a returned tuple becomes a list.
- The value codec: how a program's return value leaves its sandbox. Only plain data goes
  out (None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset) plus objects
  of classes the problem itself defines (ListNode, TreeNode, a prelude's Node), which go
  out as their attributes and are rebuilt outside from the trusted class of that name.
  What `==` would accept goes out as the plain value it equals (a Counter as a dict, a
  namedtuple as a tuple, numpy scalars as Python ones), converted inside the sandbox.
  The value the evaluator compares is therefore never an object the program made: an
  `__eq__` that is always true, a str subclass or a proxy cannot reach the comparison.
"""

import ast
import math
import numbers
from decimal import Decimal

# LiveCodeBench's import prelude for generated code (testing_util.import_string).
LCB_IMPORTS = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\n"
    "from functools import *\nfrom operator import *\nfrom io import *\nfrom sys import *\n"
    "from json import *\nfrom builtins import *\nfrom typing import *\nimport string\nimport re\n"
    "import datetime\nimport collections\nimport heapq\nimport bisect\nimport copy\nimport math\n"
    "import random\nimport statistics\nimport itertools\nimport functools\nimport operator\n"
    "import io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)
# LiveCodeBench raises Python's int/str conversion limit (4,300 digits by default) to this
INT_DIGITS = 50_000


def truncate(value, limit=300):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit // 2] + "...(truncated)..." + text[-limit // 2 :]


def clean_if_name(code):
    """Unwrap a trailing `if __name__ == '__main__':` block, as LiveCodeBench does."""
    try:
        tree = ast.parse(code)
        last = tree.body[-1]
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            code = ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body)
    except Exception:
        pass
    return code


def make_function(code):
    """Hoist imports and wrap everything else in `wrapped_function()` (LiveCodeBench)."""
    try:
        tree = ast.parse(code)
        imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        others = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
        fn = ast.FunctionDef(
            name="wrapped_function",
            args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=others,
            decorator_list=[],
            lineno=-1,
        )
        return LCB_IMPORTS + "\n" + ast.unparse(imports) + "\n" + ast.unparse(fn)
    except Exception:
        return code


def module_source(prelude, code):
    """The problem's prelude, LiveCodeBench's imports, then `code`, with every
    `from __future__` line first (where Python requires it)."""
    lines = (prelude + "\n" + code).split("\n")
    future = [ln for ln in lines if ln.startswith("from __future__ import")]
    rest = [ln for ln in lines if not ln.startswith("from __future__ import")]
    return "\n".join(future) + "\n" + LCB_IMPORTS + "\n" + "\n".join(rest)


def stripped_lines(text):
    return [line.strip() for line in text.strip().split("\n")]


def to_decimals(line):
    try:
        return [Decimal(x) for x in line.split()]
    except Exception:
        return None


def stdio_mismatch(actual, expected):
    """None when the outputs agree under LiveCodeBench's rule, else a reason."""
    got, want = stripped_lines(actual), stripped_lines(expected)
    if len(got) != len(want):
        return "mismatched output length"
    for i, (g, w) in enumerate(zip(got, want)):
        if g == w:
            continue
        dg, dw = to_decimals(g), to_decimals(w)
        try:
            same = dg is not None and dw is not None and dg == dw
        except Exception:  # a signalling NaN ("sNaN") cannot even be compared: not equal
            same = False
        if not same:
            return f"wrong answer at output line {i}"
    return None


def call_matches(actual, expected):
    """LiveCodeBench's functional rule: a returned tuple counts as a list, then `==`."""
    if isinstance(actual, tuple):
        actual = list(actual)
    return actual == expected


# ---------------------------------------------------------------- the value codec


class CodecError(Exception):
    """A value that may not leave the sandbox, or a message that does not decode."""


_PLAIN = (type(None), bool, str)
MAX_ITEMS = 5_000_000  # values encoded per message; the channel's byte cap binds first


def encode(value, classes=()):
    """`value` as JSON-able data; objects of the class names in `classes` travel as their
    attributes (shared and cyclic references kept). Anything else is a CodecError."""
    table, index, pending = [], {}, []
    budget = [MAX_ITEMS]
    allowed = set(classes)

    def enc(v, depth=0):
        budget[0] -= 1
        if budget[0] < 0:
            raise CodecError("value too large")
        if depth > 1000:
            raise CodecError("value nested too deeply")
        t = type(v)
        if t in _PLAIN:
            return v
        if t is int:
            return v if -(2**53) < v < 2**53 else {"$int": int.__repr__(v)}
        if t is float:
            return v if math.isfinite(v) else {"$float": float.__repr__(v)}
        if t is list:
            return [enc(x, depth + 1) for x in list.copy(v)]
        if t is tuple:
            return {"$tuple": [enc(x, depth + 1) for x in v]}
        if t is dict:
            return {"$dict": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in dict.items(v)]}
        if t is set or t is frozenset:
            return {"$" + t.__name__: [enc(x, depth + 1) for x in v]}
        if t is bytes:
            return {"$bytes": bytes.hex(v)}
        if t.__name__ in allowed:
            key = id(v)
            if key not in index:
                index[key] = len(table)
                table.append(None)
                pending.append(v)
            return {"$obj": index[key]}
        # what `==` accepts as equal goes out as the plain value it equals: a subclass of a
        # builtin (Counter, defaultdict, a namedtuple, numpy.str_ and numpy.float64) as its
        # base value, numpy numbers and numpy.bool_ as Python ones. The conversion runs here,
        # in the sandbox, and its result is checked again, so only exact types leave.
        for base in _BASES:
            if isinstance(v, base):
                return enc(base(v), depth + 1)
        if isinstance(v, numbers.Integral):  # numpy integers count, as with `==`
            return enc(_exact(int(v), int), depth + 1)
        if isinstance(v, numbers.Real):
            return enc(_exact(float(v), float), depth + 1)
        if t.__name__ in ("bool_", "bool"):  # numpy.bool_ (numpy.bool in numpy 2) is no Integral
            return bool(v)
        raise CodecError(f"returned a {t.__name__}, which is not plain data")

    root = enc(value)
    done = 0
    while done < len(pending):  # objects breadth first: a long linked list needs no recursion
        obj = pending[done]
        try:
            attrs = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            raise CodecError(f"a {type(obj).__name__} without attributes") from None
        fields = []
        for name, v in dict.items(attrs):
            if type(name) is not str or not name.isidentifier():
                raise CodecError("an attribute name that is not an identifier")
            fields.append([name, enc(v, 1)])
        table[index[id(obj)]] = [type(obj).__name__, fields]
        done += 1
    return {"v": root, "objs": table} if table else {"v": root}


_BASES = (str, int, float, list, tuple, dict, set, frozenset, bytes)


def _exact(v, t):
    if type(v) is not t:
        raise CodecError(f"a number that does not convert to {t.__name__}")
    return v


def decode(data, classes=None):
    """The value `encode` produced, rebuilt from trusted classes (`classes`: name -> class).
    Malformed data is a CodecError."""
    classes = classes or {}
    if type(data) is not dict or "v" not in data:
        raise CodecError("not an encoded value")
    specs = data.get("objs", [])
    if type(specs) is not list:
        raise CodecError("malformed object table")
    objs = []
    for spec in specs:
        if type(spec) is not list or len(spec) != 2 or type(spec[0]) is not str:
            raise CodecError("malformed object")
        cls = classes.get(spec[0])
        if cls is None:
            raise CodecError(f"a {spec[0]} object, which this problem does not define")
        objs.append(cls.__new__(cls))

    def dec(v, depth=0):
        if depth > 1000:
            raise CodecError("value nested too deeply")
        t = type(v)
        if t in (type(None), bool, int, float, str):
            return v
        if t is list:
            return [dec(x, depth + 1) for x in v]
        if t is not dict or len(v) != 1:
            raise CodecError("malformed value")
        (tag, x), = v.items()
        try:
            if tag == "$int":
                if type(x) is not str or len(x) > INT_DIGITS + 1:
                    raise CodecError("malformed integer")
                return int(x)
            if tag == "$float":
                return float(x) if x in ("nan", "inf", "-inf") else _bad("float")
            if tag == "$bytes":
                return bytes.fromhex(x)
            if tag == "$obj":
                return objs[x] if type(x) is int and 0 <= x < len(objs) else _bad("reference")
            if type(x) is not list:
                raise CodecError("malformed container")
            if tag == "$tuple":
                return tuple(dec(y, depth + 1) for y in x)
            if tag == "$set":
                return {dec(y, depth + 1) for y in x}
            if tag == "$frozenset":
                return frozenset(dec(y, depth + 1) for y in x)
            if tag == "$dict":
                out = {}
                for pair in x:
                    if type(pair) is not list or len(pair) != 2:
                        raise CodecError("malformed dict")
                    out[dec(pair[0], depth + 1)] = dec(pair[1], depth + 1)
                return out
        except (TypeError, ValueError) as e:  # unhashable set member, bad hex, ...
            raise CodecError(f"malformed {tag[1:]}: {e}") from None
        raise CodecError(f"unknown tag {truncate(tag, 40)}")

    value = dec(data["v"])
    for obj, spec in zip(objs, specs):
        if type(spec[1]) is not list:
            raise CodecError("malformed attributes")
        for pair in spec[1]:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str \
                    or not pair[0].isidentifier() or pair[0].startswith("__"):
                raise CodecError("malformed attribute")  # __class__, __dict__: not data
            try:
                object.__setattr__(obj, pair[0], dec(pair[1], 1))
            except (TypeError, AttributeError) as e:  # a slot or read-only attribute of the class
                raise CodecError(f"malformed attribute: {e}") from None
    return value


def _bad(what):
    raise CodecError(f"malformed {what}")
