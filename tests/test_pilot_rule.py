"""benchmarks/powered_pilot_rule.py: the pilot's learning-rate rule on constructed outcomes
whose answer is known by hand."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "powered_pilot_rule.py"


def _pilot(tmp_path, losses, tails):
    for lr, loss, (low, high) in zip(("1e-5", "5e-5"), losses, tails):
        (tmp_path / f"lr{lr}").mkdir()
        (tmp_path / f"lr{lr}" / "loss.json").write_text(json.dumps([{"step": i + 1, "loss": v} for i, v in enumerate(loss)]))
        (tmp_path / f"analyze-lr{lr}").mkdir()
        lock = {"positions": 500, "tail_mass_beyond_support": 0.012}
        diff = {"delta": (low + high) / 2, "low": low, "high": high}
        (tmp_path / f"analyze-lr{lr}" / "analyze.json").write_text(json.dumps(
            {"diagnostics": {"base": {"lock": lock}}, "differences": {"lock": {"tail_mass_beyond_support": diff}}}))
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return json.loads((tmp_path / "decision.json").read_text()), run.stdout


FALLING = [0.9, 0.85, 0.8, 0.8, 0.7, 0.7, 0.65, 0.6]
RISING = list(reversed(FALLING))


def test_the_larger_rate_only_when_its_tail_shrinks_and_its_loss_does_not_rise(tmp_path):
    for name, losses, tails, chosen in [
        ("both hold", [FALLING, FALLING], [(-0.002, 0.001), (-0.004, -0.001)], 5e-5),
        ("interval crosses zero", [FALLING, FALLING], [(-0.004, -0.001), (-0.003, 0.0005)], 1e-5),
        ("loss rose", [FALLING, RISING], [(-0.004, -0.001), (-0.004, -0.001)], 1e-5),
    ]:
        case = tmp_path / name.replace(" ", "-")
        case.mkdir()
        d, out = _pilot(case, losses, tails)
        assert d["chosen"] == chosen, name
        assert f"decision: learning rate {chosen:g}" in out


def test_an_unfinished_pilot_is_one_error(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert run.returncode != 0 and "has not finished" in run.stderr
