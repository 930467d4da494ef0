"""--shard i/N and `selfdistill merge`: two shards merged equal the unsharded run, for
`sample` and `eval`, and merge refuses shards that do not fit together."""

import json

import pytest

from selfdistill.cli import main

DEC = ["--temperature", "1.0", "--top-k", "20", "--top-p", "0.9", "--min-p", "0", "--max-tokens", "12",
       "--n", "2", "--seed", "5", "--batch-size", "3", "--no-progress", "--dtype", "float32"]


def run(stage, out, model, *extra):
    assert main([stage, "--model", str(model), "--problems", "humaneval", "--limit", "5",
                 "--out", str(out), *DEC, *extra]) == 0


def read(path):
    return path.read_text()


@pytest.mark.parametrize("stage", ["sample", "eval"])
def test_two_shards_merged_equal_the_unsharded_run(stage, tmp_path, tiny_model_dir, capsys):
    run(stage, tmp_path / "full", tiny_model_dir)
    run(stage, tmp_path / "s1", tiny_model_dir, "--shard", "1/2")
    run(stage, tmp_path / "s0", tiny_model_dir, "--shard", "0/2")
    s0_rows = read(tmp_path / "s0" / "generations.jsonl").splitlines()
    s1_rows = read(tmp_path / "s1" / "generations.jsonl").splitlines()
    assert s0_rows and s1_rows and len(s0_rows) + len(s1_rows) == 10
    assert main(["merge", str(tmp_path / "s1"), str(tmp_path / "s0"), "--out", str(tmp_path / "m")]) == 0
    for name in ("generations.jsonl", "samples.jsonl"):
        assert read(tmp_path / "m" / name) == read(tmp_path / "full" / name), name
    merged_record, full_record = (json.loads(read(tmp_path / d / "stage.json")) for d in ("m", "full"))
    assert {k: merged_record[k] for k in ("stage", "settings", "inputs")} == \
        {k: full_record[k] for k in ("stage", "settings", "inputs")}  # a run may reuse the merged stage
    if stage == "eval":
        full = json.loads(read(tmp_path / "full" / "results.json"))
        merged = json.loads(read(tmp_path / "m" / "results.json"))
        assert merged["metrics"] == full["metrics"] and merged["problems"] == full["problems"]
        assert merged["config"]["merged_from"] == [str(tmp_path / "s1"), str(tmp_path / "s0")]
    else:
        full = json.loads(read(tmp_path / "full" / "summary.json"))
        assert json.loads(read(tmp_path / "m" / "summary.json"))["summary"] == full["summary"]


def test_merge_refuses_missing_repeated_or_mismatched_shards(tmp_path, tiny_model_dir, capsys):
    run("sample", tmp_path / "s0", tiny_model_dir, "--shard", "0/2")
    run("sample", tmp_path / "s1", tiny_model_dir, "--shard", "1/2")
    assert main(["merge", str(tmp_path / "s0"), "--out", str(tmp_path / "m")]) == 2
    assert "are not ['0/1']" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s0"), "--out", str(tmp_path / "m")]) == 2
    assert "once each" in capsys.readouterr().err
    other = DEC.copy()
    other[other.index("--seed") + 1] = "6"
    assert main(["sample", "--model", str(tiny_model_dir), "--problems", "humaneval", "--limit", "5",
                 "--out", str(tmp_path / "x1"), *other, "--shard", "1/2"]) == 0
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "x1"), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "other settings or inputs" in err and "settings.decoding.seed: 6 -> 5" in err
    # a shard whose rows changed after it finished
    gen = tmp_path / "s1" / "generations.jsonl"
    gen.write_text("".join(gen.read_text().splitlines(keepends=True)[:-1]))
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]) == 2
    assert "generations.jsonl changed after the sample stage finished" in capsys.readouterr().err
    # an unfinished shard: no complete record
    (tmp_path / "s1" / "stage.json").unlink()
    assert main(["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]) == 2
    assert "not a finished stage" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_bad_shard_spec_is_one_error(tmp_path, tiny_model_dir, capsys):
    code = main(["sample", "--model", str(tiny_model_dir), "--problems", "humaneval", "--limit", "2",
                 "--out", str(tmp_path / "o"), *DEC, "--shard", "2/2"])
    assert code == 2 and "0 <= i < N" in capsys.readouterr().err


def test_an_empty_shard_has_an_empty_summary(tmp_path, tiny_model_dir, capsys):
    """2 problems x n=2 in batches of 3 are 2 batches; shard 2/3 holds none of them."""
    assert main(["sample", "--model", str(tiny_model_dir), "--problems", "humaneval", "--limit", "2",
                 "--out", str(tmp_path / "e"), *DEC, "--shard", "2/3"]) == 0
    assert "0 responses (this shard holds no batch)" in capsys.readouterr().out
    summary = json.loads(read(tmp_path / "e" / "summary.json"))["summary"]
    assert summary["generated"] == 0 and summary["with_code_share"] is None
