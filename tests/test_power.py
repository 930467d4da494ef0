"""benchmarks/power.py: the minimum detectable difference and the rho reference point, on
inputs whose answers are known by hand."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("power", Path(__file__).parents[1] / "benchmarks" / "power.py")
power = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(power)


def test_mde_by_hand():
    # mu 0.5, share 0.5, rho 0.9, n 4: Var d = 0.25 * (2*0.5*0.1 + 2*0.5/4) = 0.0875
    expected = power.Z * math.sqrt(0.0875 / 100)
    assert power.mde({"x": (100, 0.5, 0.5)}, 0.9, 4) == pytest.approx(expected)
    # pooling two equal halves halves the variance of the mean: MDE / sqrt(2)
    pooled = power.mde({"a": (100, 0.5, 0.5), "b": (100, 0.5, 0.5)}, 0.9, 4)
    assert pooled == pytest.approx(expected / math.sqrt(2))


def _cell(run: Path, t: float, correct: list[int], n: int = 8) -> None:
    cell = run / "base_eval" / f"T{t:g}"
    cell.mkdir(parents=True)
    problems = [{"task_id": f"p{i}", "source": "s", "correct": c, "n": n} for i, c in enumerate(correct)]
    (cell / "results.json").write_text(json.dumps({"problems": problems}))


def test_correlation_between_two_cells(tmp_path):
    counts = [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 0, 4]
    _cell(tmp_path, 0.6, counts)
    _cell(tmp_path, 0.8, counts)  # the same rates: observed correlation 1
    _cell(tmp_path, 1.0, [8 - c for c in counts])  # mirrored: -1
    same = power.correlation(tmp_path, 0.6, 0.8)
    assert same["s"][0] == 12 and same["s"][1] == pytest.approx(1.0)
    assert same["s"][2] == pytest.approx(1.0)  # corrected, capped at 1
    assert same["pooled"][1] == pytest.approx(1.0)
    mirrored = power.correlation(tmp_path, 0.6, 1.0)
    assert mirrored["s"][1] == pytest.approx(-1.0) and mirrored["s"][2] == pytest.approx(-1.0)
    # the share each cell's rates imply, measured as the module measures it
    count, mu, share = power.measured(tmp_path, 0.6)["s"]
    assert (count, mu) == (12, pytest.approx(sum(counts) / 96))
    assert 0 < share <= 1
