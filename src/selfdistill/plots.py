"""Figures: matplotlib without a display, each saved as PNG and SVG beside each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, stem: Path) -> list[Path]:
    """Write STEM.png and STEM.svg atomically enough for readers (whole files via rename)."""
    import os

    paths = []
    for ext in ("png", "svg"):
        path = stem.with_suffix(f".{ext}")
        tmp = path.with_name(path.name + ".tmp")
        fig.savefig(tmp, format=ext, dpi=120, bbox_inches="tight")
        os.replace(tmp, path)
        paths.append(path)
    pyplot().close(fig)
    return paths
