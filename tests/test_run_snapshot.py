"""benchmarks/run_snapshot.py: a finished stage saved into the repository and restored on
another machine is fresh again, byte for byte; a stage whose model is not kept is not."""

import json
import subprocess
import sys
from pathlib import Path

from selfdistill import records
from selfdistill.generation import DecodingConfig
from selfdistill.sampling import SampleConfig, sample, stage_key

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "run_snapshot.py"
DEC = DecodingConfig(temperature=1.0, top_k=20, top_p=0.9, min_p=0.0, max_tokens=12, n=1, seed=1)


def snapshot(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_saved_stages_restore_fresh_and_models_are_never_kept(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    cfg = SampleConfig(model=str(tiny_model_dir), problems="humaneval", out=str(run / "sample"), decoding=DEC,
                       batch_size=2, limit=3, progress=False)
    sample(cfg)
    # a finished stage whose output is a model directory, and an unfinished one
    key = records.StageKey("train", {"x": 1}, {})
    with records.open_stage(run / "train", key) as stage:
        (run / "train" / "model").mkdir()
        (run / "train" / "model" / "config.json").write_text("{}")
        (run / "train" / "loss.json").write_text("[]")
        stage.finish(["model", "loss.json"])
    (run / "base_eval" / "T0").mkdir(parents=True)
    (run / "base_eval" / "T0" / records.RECORD).write_text(json.dumps({"stage": "eval", "complete": False}))

    saved = snapshot("save", run, tmp_path / "snap")
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout) == {"save": ["sample", "train"]}
    snap = tmp_path / "snap"
    assert (snap / "sample" / "samples.jsonl.gz").is_file() and not (snap / "sample" / "samples.jsonl").exists()
    assert not (snap / "train" / "model").exists() and not (snap / "base_eval").exists()
    # deterministic: saving twice gives the same bytes
    again = snapshot("save", run, tmp_path / "snap2")
    assert again.returncode == 0
    assert (snap / "sample" / "samples.jsonl.gz").read_bytes() == \
        (tmp_path / "snap2" / "sample" / "samples.jsonl.gz").read_bytes()

    restored = snapshot("restore", snap, tmp_path / "elsewhere")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout.splitlines()[-1]) == {"restore": ["sample"]}
    assert "train: not restored, the snapshot lacks model" in restored.stdout
    moved = SampleConfig(**{**cfg.__dict__, "out": str(tmp_path / "elsewhere" / "sample")})
    assert records.freshness(tmp_path / "elsewhere" / "sample", stage_key(moved)).fresh
    for name in ("generations.jsonl", "samples.jsonl", "summary.json"):
        assert (tmp_path / "elsewhere" / "sample" / name).read_bytes() == (run / "sample" / name).read_bytes()

    # a snapshot edited after it was saved is refused, and nothing half-restored is left
    with open(snap / "sample" / "summary.json", "a") as f:
        f.write(" ")
    bad = snapshot("restore", snap, tmp_path / "third")
    assert bad.returncode != 0 and "summary.json: its content is not what" in bad.stderr
    assert not (tmp_path / "third" / "sample").exists()
