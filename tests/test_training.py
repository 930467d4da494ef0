"""`train`: prompt tokens carry no loss, EOS keeps its label, steps change weights,
the written model is accepted by eval and sample."""

import json

import pytest
import torch

from selfdistill.training import TrainConfig, build_trainer, train


def write_samples(path, n=8):
    rows = [{"prompt": [{"role": "user", "content": f"Write a program that prints {i}."}],
             "completion": f"```python\nprint({i})\n```"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(tmp_path, model, **kw):
    base = dict(model=str(model), data=str(write_samples(tmp_path / "s.jsonl")), out=str(tmp_path / "t"),
                max_steps=3, global_batch_size=4, per_device_batch_size=2, learning_rate=1e-2,
                min_learning_rate=1e-3, bf16=False, progress=False)
    return TrainConfig(**{**base, **kw})


def test_prompt_masked_and_eos_kept_even_when_pad_is_eos(tmp_path, tiny_model_dir):
    trainer = build_trainer(config(tmp_path, tiny_model_dir))
    tok = trainer.processing_class
    assert tok.pad_token_id == tok.eos_token_id  # SmolLM2's pitfall is really present
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        text_ids = ids[mask.bool()]
        lab = labels[mask.bool()]
        prompt_len = int((lab == -100).sum())
        decoded_prompt = tok.decode(text_ids[:prompt_len])
        assert "Write a program" in decoded_prompt and "print(" not in decoded_prompt
        assert (lab[prompt_len:] != -100).all()  # every completion token is trained on
        assert tok.eos_token_id in lab[prompt_len:].tolist()  # the end-of-turn token keeps its label
        assert (labels[~mask.bool()] == -100).all()  # padding is masked


def test_training_changes_weights_and_writes_a_loadable_model(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    result = train(config(tmp_path, tiny_model_dir))
    assert result["steps"] == 3
    after = AutoModelForCausalLM.from_pretrained(result["model_dir"]).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    out = tmp_path / "t"
    assert (out / "loss.png").stat().st_size > 0
    assert len(json.loads((out / "loss.json").read_text())) == 3
    record = json.loads((out / "train_config.json").read_text())
    assert record["learning_rate"] == 1e-2 and record["provenance"]["versions"]["trl"]


def test_lora_is_merged_into_a_plain_model(tmp_path, tiny_model_dir):
    result = train(config(tmp_path, tiny_model_dir, method="lora", lora_r=4, lora_alpha=8))
    files = {p.name for p in (tmp_path / "t" / "model").iterdir()}
    assert "config.json" in files and "adapter_config.json" not in files
    assert result["steps"] == 3


def test_presets_fill_only_unset_keys():
    from selfdistill.training import with_preset

    data = with_preset({"preset": "paper-thinking", "max_steps": 7})
    assert data["max_steps"] == 7 and data["warmup_steps"] == 50 and data["learning_rate"] == 5e-6


def test_rerun_resumes_from_the_last_checkpoint(tmp_path, tiny_model_dir):
    import shutil

    cfg = config(tmp_path, tiny_model_dir, max_steps=4, save_steps=1)
    train(cfg)
    first = json.loads((tmp_path / "t" / "loss.json").read_text())
    out = tmp_path / "t"
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    shutil.rmtree(out / "checkpoints" / "checkpoint-4")  # as if killed after step 3
    shutil.rmtree(out / "model")
    # mark what checkpoint-3 remembers: a restored history carries the mark, a recomputed one not
    state_path = out / "checkpoints" / "checkpoint-3" / "trainer_state.json"
    state = json.loads(state_path.read_text())
    state["log_history"][0]["loss"] = 123.0
    state_path.write_text(json.dumps(state))
    result = train(cfg)
    history = json.loads((out / "loss.json").read_text())
    assert result["steps"] == 4
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert history[0]["loss"] == 123.0 and history[1:3] == first[1:3]  # restored from checkpoint-3
    assert json.loads((out / "stage.json").read_text())["complete"]


def test_a_rerun_with_other_settings_or_other_data_is_refused(tmp_path, tiny_model_dir):
    from selfdistill.errors import SelfdistillError
    from selfdistill.records import open_stage
    from selfdistill.training import stage_key

    cfg = config(tmp_path, tiny_model_dir)
    with open_stage(tmp_path / "t", stage_key(cfg)):
        (tmp_path / "t" / "checkpoints").mkdir()  # started, with work on disk: the pin a resume is checked against
    with open_stage(tmp_path / "t", stage_key(config(tmp_path, tiny_model_dir, progress=True))):
        pass  # progress bars may change
    with pytest.raises(SelfdistillError, match="settings.learning_rate: 0.01 -> 0.005"):
        train(config(tmp_path, tiny_model_dir, learning_rate=5e-3))
    # other data under the same path: resuming the old checkpoints over it is refused
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"prompt": [{"role": "user", "content": "x"}],
                                                          "completion": "y" * (i + 1)}) + "\n" for i in range(8)))
    with pytest.raises(SelfdistillError, match="inputs.data: sha256:"):
        train(TrainConfig(**{**cfg.__dict__}))


def test_last_checkpoint_is_by_step_number(tmp_path):
    from selfdistill.training import last_checkpoint

    for step in (950, 1000, 99):
        (tmp_path / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
    assert last_checkpoint(tmp_path).endswith("checkpoint-1000")
    assert last_checkpoint(tmp_path / "none") is None


def test_global_batch_is_kept_whatever_the_number_of_processes(tmp_path):
    import pytest

    from selfdistill.errors import SelfdistillError
    from selfdistill.training import accumulation_steps

    cfg = TrainConfig(model="m", data="d", out="o", global_batch_size=32, per_device_batch_size=2)
    assert [accumulation_steps(cfg, n) for n in (1, 2, 8)] == [16, 8, 2]
    with pytest.raises(SelfdistillError, match="not a multiple"):
        accumulation_steps(cfg, 3)


def test_yaml_floats_written_1e_4_are_numbers(tmp_path):
    import pytest

    from selfdistill.config import build, read_yaml
    from selfdistill.errors import SelfdistillError

    path = tmp_path / "t.yaml"
    path.write_text("model: m\ndata: d\nout: o\nlearning_rate: 1e-4\nmin_learning_rate: 1e-5\n")
    data = read_yaml(path)
    assert data["learning_rate"] == "1e-4"  # what PyYAML (YAML 1.1) makes of it
    assert build(TrainConfig, data).learning_rate == 1e-4
    with pytest.raises(SelfdistillError, match="max_steps: 'ten' is not an integer"):
        build(TrainConfig, {**data, "max_steps": "ten"})


def test_a_run_refuses_an_unmerged_lora():
    import pytest

    from selfdistill.config import build, read_yaml
    from selfdistill.errors import SelfdistillError
    from selfdistill.layout import RunConfig

    data = read_yaml("configs/cpu-demo.yaml")
    data["training"] = {**data["training"], "merge_lora": False}
    with pytest.raises(SelfdistillError, match="merge_lora must be true"):
        build(RunConfig, data)


def test_every_train_field_is_a_flag_and_the_resolved_arguments_are_recorded(tmp_path, tiny_model_dir):
    import dataclasses

    from selfdistill.cli import _load, build_parser, main

    parser = build_parser()
    flags = {a.dest for a in parser._subparsers._group_actions[0].choices["train"]._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= flags
    args = parser.parse_args(["train", "--model", "m", "--data", "d", "--out", "o", "--merge-lora", "false",
                              "--bf16", "auto", "--adam-beta2", "0.99", "--gradient-checkpointing", "true"])
    cfg = _load(TrainConfig, args)
    assert (cfg.merge_lora, cfg.bf16, cfg.adam_beta2, cfg.gradient_checkpointing) == (False, "auto", 0.99, True)
    samples = write_samples(tmp_path / "s.jsonl")
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(samples), "--out", str(tmp_path / "t"),
                 "--max-steps", "1", "--global-batch-size", "2", "--per-device-batch-size", "2",
                 "--bf16", "false", "--learning-rate", "1e-3", "--min-learning-rate", "1e-4",
                 "--no-progress"]) == 0
    record = json.loads((tmp_path / "t" / "train_config.json").read_text())
    assert record["training_arguments"]["max_grad_norm"] == 1.0
    assert record["training_arguments"]["adam_epsilon"] == 1e-8
    assert record["gradient_accumulation_steps"] == 1 and record["world_size"] == 1


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_follow_the_one_process_loss_curve(tmp_path, tiny_model_dir):
    """A real 2-process data-parallel run (torchrun, the launcher accelerate uses; gloo on
    CPU) with the same global batch as one process: the same loss curve, world size 2 and
    no gradient accumulation recorded, and the outputs written once by the main process."""
    import subprocess
    import sys

    samples = write_samples(tmp_path / "s.jsonl", n=16)
    flags = ["--model", str(tiny_model_dir), "--data", str(samples), "--method", "full", "--max-steps", "4",
             "--global-batch-size", "4", "--per-device-batch-size", "2", "--learning-rate", "1e-2",
             "--min-learning-rate", "1e-3", "--bf16", "false", "--gradient-checkpointing", "false",
             "--save-steps", "2", "--no-progress"]
    one = subprocess.run([sys.executable, "-m", "selfdistill.cli", "train", *flags, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(_free_port()), "-m", "selfdistill.cli", "train", *flags,
                          "--out", str(tmp_path / "two")], capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    curves = {d: [h["loss"] for h in json.loads((tmp_path / d / "loss.json").read_text())] for d in ("one", "two")}
    assert len(curves["one"]) == len(curves["two"]) == 4
    assert curves["one"] == [pytest.approx(x, rel=1e-4) for x in curves["two"]]
    assert curves["one"][-1] < curves["one"][0]  # it trained
    record = json.loads((tmp_path / "two" / "train_config.json").read_text())
    assert record["world_size"] == 2 and record["gradient_accumulation_steps"] == 1
    assert record["distributed"]["backend"] == "gloo"
    assert json.loads((tmp_path / "one" / "train_config.json").read_text())["gradient_accumulation_steps"] == 2
    assert (tmp_path / "two" / "model" / "config.json").exists() and not (tmp_path / "two" / "model.partial").exists()


def test_shipped_accelerate_configs_parse_and_keep_the_global_batch():
    """configs/accelerate/*.yaml load with accelerate's own config reader; each names the
    launch it is for (FSDP and ZeRO-3 need GPUs: benchmarks/gpu_check.sh runs them)."""
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file

    root = Path(__file__).resolve().parents[1] / "configs" / "accelerate"
    kinds = {}
    for path in sorted(root.glob("*.yaml")):
        cfg = load_config_from_file(str(path))
        kinds[path.stem] = str(cfg.distributed_type)
        assert cfg.num_processes == 8 and cfg.mixed_precision == "bf16"
    assert kinds == {"ddp": "DistributedType.MULTI_GPU", "fsdp": "DistributedType.FSDP",
                     "zero3": "DistributedType.DEEPSPEED"}
    zero3 = load_config_from_file(str(root / "zero3.yaml"))
    assert zero3.deepspeed_config["zero_stage"] == 3
    fsdp = load_config_from_file(str(root / "fsdp.yaml"))
    assert fsdp.fsdp_config["fsdp_version"] == 2 and fsdp.fsdp_config["fsdp_reshard_after_forward"] is True


def test_response_positions_give_the_padded_batchs_losses_and_gradients(tmp_path, tiny_model_dir):
    """The fastest exact CPU setting (one sequence per forward pass, the LM head only at
    response positions) against the padded batch of four: the same per-token losses and,
    accumulated over the four sequences, the same gradients, equal to TRL's own fused loss
    on the padded batch too. Prompts and responses of different lengths, so the padded
    batch really pads and a response position is not at the same index in every row."""
    rows = [{"prompt": [{"role": "user", "content": "Write a program. " * (1 + 3 * i)}],
             "completion": "```python\n" + "print(1)\n" * (1 + 4 * (3 - i)) + "```"} for i in range(4)]
    data = tmp_path / "lengths.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def grads(trainer):
        return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}

    padded = build_trainer(config(tmp_path, tiny_model_dir, data=str(data), per_device_batch_size=4,
                                  lm_head_positions="trl"))
    batch = padded.data_collator([padded.train_dataset[i] for i in range(4)])
    assert (batch["attention_mask"] == 0).any()  # the batch really is padded
    model = padded.model
    # reference per-token log-probs: a plain full forward pass over the padded batch
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    full = torch.log_softmax(logits[:, :-1].float(), -1)
    reference = [full[r][labels[r] != -100].gather(-1, labels[r][labels[r] != -100, None]).squeeze(-1)
                 for r in range(4)]
    total = int((labels != -100).sum())
    padded.compute_loss(model, batch).backward()  # TRL's fused head, mean over the batch's tokens
    trl_grads = grads(padded)
    model.zero_grad()
    (-torch.cat(reference).sum() / total).backward()
    plain_grads = grads(padded)

    ours = build_trainer(config(tmp_path, tiny_model_dir, data=str(data), per_device_batch_size=1,
                                lm_head_positions="auto"))
    assert ours.lm_head_positions == "response"
    ours.model.train()
    for r in range(4):
        one = ours.data_collator([ours.train_dataset[r]])
        assert "attention_mask" not in one or bool(one["attention_mask"].all())  # nothing padded
        from selfdistill.training import response_token_logprobs

        logprobs, _, _ = response_token_logprobs(ours.model, one)
        torch.testing.assert_close(logprobs, reference[r].detach(), rtol=1e-5, atol=1e-6)
        ours.compute_loss(ours.model, one, num_items_in_batch=total).backward()
    accumulated = grads(ours)
    assert set(accumulated) == set(plain_grads) == set(trl_grads) and accumulated
    for name, g in plain_grads.items():
        torch.testing.assert_close(accumulated[name], g, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(trl_grads[name], g, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_embedding_row_gradient_equals_autograds_dense_one(tmp_path, tiny_model_dir, tied):
    """On a CPU in one process the input embeddings' gradient is added by token row into
    one buffer per optimiser step instead of autograd's dense per-sequence gradient; over
    four accumulated sequences of different lengths every parameter's gradient (the
    embedding's included, and with tied weights the LM head's share in it) equals the one
    autograd forms, the padding row included, and the recorded mode says which ran."""
    from transformers import AutoModelForCausalLM

    from selfdistill.training import response_token_logprobs

    model_dir = tiny_model_dir
    if not tied:  # the embedded default's own layout: an LM head of its own
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        model.config.tie_word_embeddings = False
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
        model_dir = tmp_path / "untied"
        model.save_pretrained(model_dir)
        import shutil

        for f in tiny_model_dir.iterdir():
            if "token" in f.name or f.name.endswith(".jinja"):
                shutil.copy(f, model_dir / f.name)
    rows = [{"prompt": [{"role": "user", "content": "Sum a list. " * (1 + 2 * i)}],
             "completion": "```python\n" + "x = 1\n" * (1 + 3 * (3 - i)) + "```"} for i in range(4)]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ours = build_trainer(config(tmp_path, model_dir, data=str(data), per_device_batch_size=1))
    assert ours.embedding_gradient[0] == "rows"
    assert (ours.model.get_output_embeddings().weight is ours.model.get_input_embeddings().weight) == tied
    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    padding = reference.get_input_embeddings().padding_idx
    batches = [ours.data_collator([ours.train_dataset[r]]) for r in range(4)]
    assert padding is not None and any((b["input_ids"] == padding).any() for b in batches)

    def accumulate(model):
        model.train()
        for batch in batches:
            logprobs, _, _ = response_token_logprobs(model, batch)
            (-logprobs.sum() / 40).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    row_grads, dense_grads = accumulate(ours.model), accumulate(reference)
    assert set(row_grads) == set(dense_grads)
    for name, g in dense_grads.items():
        torch.testing.assert_close(row_grads[name], g, rtol=1e-5, atol=1e-8, msg=name)
    embedding = row_grads["model.embed_tokens.weight"]
    if not tied:  # only the rows of tokens seen carry a gradient, and never the padding row
        assert 0 < int(embedding.abs().sum(-1).count_nonzero()) < embedding.shape[0] // 10
        assert not embedding[padding].any()
    ours.model.zero_grad()  # the trainer clears .grad after each step: the next step starts anew
    assert ours.model.get_input_embeddings().weight.grad is None
    assert accumulate(ours.model)["model.embed_tokens.weight"].equal(embedding)


def test_an_embedding_with_its_own_forward_keeps_autograds_gradient(tmp_path, tiny_model_dir):
    """Only a plain nn.Embedding lookup gets the row gradient: a subclass that does more in
    its forward (Gemma's scaled embedding) keeps its forward and autograd's gradient, and
    LoRA's frozen embeddings have none to form."""
    from selfdistill.training import embedding_gradient_mode

    trainer = build_trainer(config(tmp_path, tiny_model_dir, per_device_batch_size=1))
    model = trainer.model
    assert trainer.embedding_gradient[0] == "rows"

    class Scaled(torch.nn.Embedding):
        def forward(self, ids):
            return super().forward(ids) * 2.0

    plain = model.get_input_embeddings()
    scaled = Scaled(plain.num_embeddings, plain.embedding_dim, plain.padding_idx)
    model.set_input_embeddings(scaled)
    mode, why = embedding_gradient_mode(model)
    assert mode == "dense" and "Scaled" in why
    model.set_input_embeddings(torch.nn.Embedding(4, 2))
    model.get_input_embeddings().weight.requires_grad_(False)
    assert embedding_gradient_mode(model)[0] == "dense"
