"""Writing a benchmark's table into a markdown file between its own markers (replaced on rerun)."""

from __future__ import annotations

from pathlib import Path


def write_block(out: Path, name: str, heading: str, lines: list[str]) -> str:
    """Put `lines` between `<!-- NAME:start -->` and `<!-- NAME:end -->` in `out` (appending
    a section under `heading` the first time); return the block."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = "\n".join([start, *lines, end])
    text = out.read_text() if out.exists() else "# Benchmarks\n\n"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text += f"\n## {heading}\n\n" + block + "\n"
    out.write_text(text)
    return block
