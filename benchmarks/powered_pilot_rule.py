"""The learning-rate rule of the powered experiment's pilot (docs/experiments.md, run 5),
applied to what benchmarks/powered_pilot.sh wrote:

    .venv/bin/python benchmarks/powered_pilot_rule.py [PILOT_DIR]

Rule, written before the pilot ran: take the larger rate if its lock-tail difference
(pilot - base: the mass beyond the truncated support at lock positions) has a 95% interval
below zero *and* its training loss has not risen (the mean of the last 4 logged steps is not
above the mean of the first 4); otherwise take the smaller rate. Prints one line per rate
and the decision, and writes PILOT_DIR/decision.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rate_summary(pilot: Path, lr: str) -> dict:
    loss = [h["loss"] for h in json.loads((pilot / f"lr{lr}" / "loss.json").read_text())]
    analysis = json.loads((pilot / f"analyze-lr{lr}" / "analyze.json").read_text())
    tail = analysis["differences"]["lock"]["tail_mass_beyond_support"]
    base_tail = analysis["diagnostics"]["base"]["lock"]["tail_mass_beyond_support"]
    first, last = sum(loss[:4]) / len(loss[:4]), sum(loss[-4:]) / len(loss[-4:])
    return {"learning_rate": float(lr), "loss_first4": first, "loss_last4": last, "loss_not_risen": last <= first,
            "lock_positions": analysis["diagnostics"]["base"]["lock"]["positions"],
            "base_lock_tail": base_tail, "lock_tail_difference": tail,
            "tail_interval_below_zero": tail["high"] < 0}


def main() -> None:
    pilot = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/powered-0.5b-pilot")
    rates = sorted((p.name[2:] for p in pilot.glob("lr*") if (p / "loss.json").is_file()), key=float)
    if len(rates) != 2 or not all((pilot / f"analyze-lr{r}" / "analyze.json").is_file() for r in rates):
        sys.exit(f"error: {pilot}: the pilot has not finished (need two trained rates, each analysed)")
    rows = [rate_summary(pilot, r) for r in rates]
    for r in rows:
        t = r["lock_tail_difference"]
        print(f"lr {r['learning_rate']:g}: loss {r['loss_first4']:.4f} -> {r['loss_last4']:.4f} (first/last 4 steps), "
              f"lock tail {r['base_lock_tail']:.4f} (base), pilot - base {t['delta']:+.5f} "
              f"[{t['low']:+.5f}, {t['high']:+.5f}] over {r['lock_positions']} lock positions")
    larger = rows[-1]
    take_larger = larger["tail_interval_below_zero"] and larger["loss_not_risen"]
    chosen = larger if take_larger else rows[0]
    why = ("the larger rate's lock-tail interval is below zero and its loss did not rise" if take_larger else
           "the larger rate's " + " and ".join(
               [w for w, bad in (("lock-tail interval is not below zero", not larger["tail_interval_below_zero"]),
                                 ("loss rose", not larger["loss_not_risen"])) if bad]))
    print(f"decision: learning rate {chosen['learning_rate']:g} ({why})")
    (pilot / "decision.json").write_text(json.dumps({"rates": rows, "chosen": chosen["learning_rate"], "why": why},
                                                     indent=1))


if __name__ == "__main__":
    main()
