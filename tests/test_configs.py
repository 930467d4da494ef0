"""Every shipped config is a valid, complete RunConfig (no hidden defaults to fill in)."""

from pathlib import Path

import pytest

from selfdistill.config import build, read_yaml
from selfdistill.layout import RunConfig

# run configs (configs/accelerate/ holds accelerate's launch configs, tested in test_training)
CONFIGS = sorted(p for p in (Path(__file__).parents[1] / "configs").rglob("*.yaml") if p.parent.name != "accelerate")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds(path):
    data = read_yaml(path)
    assert set(data["sample_decoding"]) == {"temperature", "top_k", "top_p", "min_p", "max_tokens", "n", "seed"}
    for key in ("base_eval", "ssd_eval"):  # every grid states all of it
        assert set(data[key]) == {"t_eval", "top_k", "top_p", "min_p", "max_tokens", "n", "seed"}
    config = build(RunConfig, data, where=str(path))
    assert len(config.base_eval.t_eval) >= 3 and len(config.ssd_eval.t_eval) >= 3
    assert config.sample_decoding.n == 1  # SSD samples one completion per prompt
    config.train_config()


def test_paper_presets_carry_the_papers_numbers():
    config = build(RunConfig, read_yaml(Path(__file__).parents[1] / "configs/paper/qwen3-30b-a3b-instruct.yaml"))
    train = config.train_config()
    assert (train.learning_rate, train.min_learning_rate, train.max_steps, train.warmup_steps) == (5e-6, 1e-6, 2500, 250)
    assert (train.global_batch_size, train.weight_decay, train.adam_beta2) == (32, 0.1, 0.95)
    assert config.sample_decoding.temperature == 1.6
    # the paper's T_eval of each model lies in both grids, with 0.2 either side
    assert config.base_eval.t_eval == config.ssd_eval.t_eval == [0.5, 0.7, 0.9, 1.1]
    assert (config.base_eval.top_k, config.base_eval.top_p, config.base_eval.n) == (20, 0.8, 10)
    assert config.eval_problems == "lcb:hub#v6"
    assert (train.load_dtype, train.bf16, train.gradient_checkpointing, train.per_device_batch_size) == (
        "bfloat16", True, True, 1)
    from selfdistill.training import accumulation_steps

    assert accumulation_steps(train, 8) == 4  # the paper's global batch of 32 on 8 GPUs


def test_engine_boolean_flag_reads_false_as_false():
    from selfdistill.cli import _load, build_parser
    from selfdistill.sampling import SampleConfig

    base = ["sample", "--model", "m", "--problems", "humaneval", "--out", "o", "--temperature", "1",
            "--top-k", "0", "--top-p", "1", "--min-p", "0", "--max-tokens", "8", "--n", "1",
            "--seed", "0", "--backend", "vllm"]
    for text, value in (("false", False), ("true", True)):
        args = build_parser().parse_args(base + ["--enforce-eager", text])
        assert _load(SampleConfig, args).engine.enforce_eager is value
    with pytest.raises(SystemExit):
        build_parser().parse_args(base + ["--enforce-eager", "maybe"])
