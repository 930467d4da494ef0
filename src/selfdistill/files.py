"""File helpers every stage shares: JSONL reading with located errors, atomic writes, hashing."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from selfdistill.errors import SelfdistillError, located


def read_jsonl(path: Path, what: str = "JSONL") -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs; blank lines skipped; a missing file or malformed line is
    one SelfdistillError naming the file (and line)."""
    if not path.is_file():
        raise SelfdistillError(f"{path}: no such {what} file")
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise located(path, lineno, f"malformed JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise located(path, lineno, "expected a JSON object per line")
            rows.append((lineno, row))
    return rows


def read_appended(path: Path) -> list[dict[str, Any]]:
    """The rows of an append-only JSONL file that a killed process may have left with a
    torn last line (dropped); a corrupt complete line is an error naming it."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.endswith("\n"):
                break  # torn write from a killed process
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise located(path, lineno, "corrupt row (not written by selfdistill?)") from None
    return rows


def append_synced(f: Any, rows: list[dict[str, Any]]) -> None:
    """Append rows to an open JSONL file and put them on disk before returning."""
    f.write("".join(json.dumps(r) + "\n" for r in rows))
    f.flush()
    os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
