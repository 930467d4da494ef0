"""`selfdistill train`: plain SFT on the raw samples (TRL's SFTTrainer), full or LoRA.

    selfdistill train --model qwen2.5-coder-0.5b --data runs/sample/samples.jsonl --out runs/train \
        --preset paper-instruct --max-steps 20 --max-seq-length 1024

Loss is on completion tokens only (prompt masked; TRL's prompt-completion format), the
completion ends with the chat template's end-of-turn token, which keeps its label even
when the tokenizer's pad token equals its EOS (padding is masked by length, not by id).
Optimiser as in the paper: AdamW (0.9, 0.95), weight decay 0.1, cosine decay from
learning_rate to min_learning_rate after a linear warm-up, global batch by gradient
accumulation (divided among the processes of a multi-process run). Writes DIR/stage.json
when it starts (its settings, the base model and the data by content), DIR/model (LoRA
merged unless merge_lora is false), DIR/loss.json, DIR/loss.png, DIR/train_config.json,
and DIR/stage.json again, complete, last; rerunning resumes from the last checkpoint, and
only with the settings and data it started with.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfdistill.config import provenance, to_dict
from selfdistill.errors import SelfdistillError, located
from selfdistill.files import atomic_write_text, read_jsonl, sha256_file
from selfdistill.records import StageKey, open_stage

# The paper's fine-tuning numbers (docs/method.md). A preset fills keys the user did not set.
PRESETS: dict[str, dict[str, Any]] = {
    "paper-instruct": {"learning_rate": 5e-6, "min_learning_rate": 1e-6, "max_steps": 2500,
                       "warmup_steps": 250, "global_batch_size": 32, "max_seq_length": 65536},
    "paper-thinking": {"learning_rate": 5e-6, "min_learning_rate": 1e-6, "max_steps": 300,
                       "warmup_steps": 50, "global_batch_size": 32, "max_seq_length": 65536},
}


@dataclass
class TrainConfig:
    """Supervised fine-tuning of a model on its own samples."""

    model: str = field(metadata={"help": "model to fine-tune (same forms as eval --model)"})
    data: str = field(metadata={"help": "samples.jsonl written by `sample`"})
    out: str = field(metadata={"help": "output directory"})
    method: str = field(default="full", metadata={"help": "full | lora"})
    learning_rate: float = field(default=5e-6, metadata={"help": "peak learning rate"})
    min_learning_rate: float = field(default=1e-6, metadata={"help": "cosine floor"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    max_steps: int = field(default=100, metadata={"help": "optimiser steps"})
    global_batch_size: int = field(default=32, metadata={"help": "sequences per optimiser step"})
    per_device_batch_size: int = field(default=1, metadata={
        "help": "sequences per forward pass; 1 leaves no padding to compute (the fastest exact setting on CPU, "
                "docs/training.md), more fills a GPU"})
    max_seq_length: int = field(default=2048, metadata={"help": "longer examples are truncated"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay"})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1"})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (method lora)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    merge_lora: bool = field(default=True, metadata={"help": "save merged weights, not an adapter"})
    bf16: bool | str = field(default="auto", metadata={
        "help": "bf16 autocast: auto (where the hardware has native bf16, else fp32), true, false"})
    load_dtype: str = field(default="float32", metadata={
        "help": "dtype the weights are loaded in: float32 | bfloat16 (the paper's 4B-30B runs) | auto"})
    padding_free: bool = field(default=False, metadata={
        "help": "batches without padding, sequences kept apart by position ids (needs flash attention: GPUs)"})
    packing: bool = field(default=False, metadata={
        "help": "pack several responses per sequence up to max_seq_length (TRL's best-fit decreasing)"})
    lm_head_positions: str = field(default="auto", metadata={
        "help": "where the LM head and the loss are computed: response (only at positions that carry a label, "
                "selfdistill's loss), trl (TRL's fused LM head: every position on CPU, response positions through "
                "its Triton kernel on GPUs), auto (response on CPU, trl on GPUs)"})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "trade compute for memory"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N steps (for resume)"})
    seed: int = field(default=0, metadata={"help": "data order and init seed"})
    preset: str | None = field(default=None, metadata={"help": "paper-instruct | paper-thinking"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        if self.method not in ("full", "lora"):
            raise ValueError("method must be full or lora")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}: {sorted(PRESETS)}")
        if self.global_batch_size % self.per_device_batch_size:
            raise ValueError("global_batch_size must be a multiple of per_device_batch_size")
        if self.bf16 not in ("auto", True, False):
            raise ValueError("bf16 must be auto, true or false")
        if self.load_dtype not in ("float32", "bfloat16", "auto"):
            raise ValueError("load_dtype must be float32, bfloat16 or auto")
        if self.lm_head_positions not in ("auto", "response", "trl"):
            raise ValueError("lm_head_positions must be auto, response or trl")
        if self.min_learning_rate > self.learning_rate:
            raise ValueError("min_learning_rate must not exceed learning_rate")


def with_preset(data: dict[str, Any]) -> dict[str, Any]:
    """Preset values under the user's own keys (the user always wins)."""
    name = data.get("preset")
    if name is None:
        return data
    if name not in PRESETS:
        raise SelfdistillError(f"unknown preset {name!r}: {', '.join(sorted(PRESETS))}")
    return {**PRESETS[name], **data}


def resolve_bf16(bf16: bool | str) -> tuple[bool, str]:
    """Whether training autocasts to bf16, and why (recorded in train_config.json)."""
    from selfdistill.generation import resolve_dtype

    if bf16 != "auto":  # the engine's explicit reason: it says where this CPU emulates bf16
        return bool(bf16), resolve_dtype("bfloat16" if bf16 else "float32")[1]
    dtype, why = resolve_dtype("auto")
    return dtype == "bfloat16", why


def resolve_lm_head_positions(config: TrainConfig) -> tuple[str, str]:
    """Where the LM head runs, and why (recorded in train_config.json)."""
    import torch

    if config.lm_head_positions != "auto":
        return config.lm_head_positions, "set explicitly"
    if torch.cuda.is_available():
        return "trl", "auto: GPU (TRL's Triton kernel scores response positions without materialising logits)"
    return "response", "auto: CPU (TRL's fused head would score every prompt position too)"


def response_token_logprobs(model: Any, inputs: dict[str, Any]) -> tuple[Any, Any, Any]:
    """log p(label) of every labelled token, with the LM head run only at the positions
    that predict one (in a batch: the positions where any row has a label), so no prompt
    position pays for a vocabulary-sized projection. Returns (log-probs [M], the logits at
    those positions [M, V] detached, the labels [M]), M = tokens carrying loss. Exact: the
    same numbers as a full forward pass's log-softmax at the labelled positions (tested)."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    shifted = labels[:, 1:]  # position i predicts token i + 1
    keep = (shifted != -100).any(0).nonzero().squeeze(-1)
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    logits = model(**model_inputs, use_cache=False, logits_to_keep=keep).logits  # [B, K, V]
    targets = shifted[:, keep]
    mask = targets != -100
    picked = logits[mask].float()
    logprobs = -F.cross_entropy(picked, targets[mask], reduction="none")
    return logprobs, picked.detach(), targets[mask]


def embedding_gradient_mode(model: Any) -> tuple[str, str]:
    """How the input embeddings' gradient is formed, and why (recorded in train_config.json).

    "rows": on a CPU in one process, each backward pass adds its token rows into one fp32
    buffer kept for the whole optimiser step (`EmbeddingRowGrad`), instead of autograd's
    dense vocabulary-by-hidden gradient built anew and zero-filled for every sequence and
    then added into .grad: for Qwen2.5-Coder-0.5B that is 545 MB written twice per sequence,
    and a full fine-tuning step ran 1.25x faster without it (benchmarks/train_profile.py,
    docs/training.md). The same sums, so the same gradient (tested). "dense" everywhere
    else: a GPU fills fast, several processes need autograd's own gradient hooks to reduce
    it, and an embedding that is not a plain `nn.Embedding` (Gemma's scales its output) or
    uses max_norm / scale_grad_by_freq / sparse keeps its own forward."""
    import torch

    module = model.get_input_embeddings()
    if type(module) is not torch.nn.Embedding or module.max_norm is not None or module.scale_grad_by_freq \
            or module.sparse:
        return "dense", f"{type(module).__name__}: not a plain nn.Embedding lookup"
    weight = module.weight
    if not weight.requires_grad:
        return "dense", "embeddings frozen (LoRA)"
    if weight.dtype != torch.float32:
        return "dense", f"weights in {weight.dtype} (rows are summed in fp32 weights only)"
    if torch.cuda.is_available() or world_size() > 1:
        return "dense", "GPU or several processes (autograd's own gradient, which distributed hooks reduce)"
    return "rows", "CPU, one process: token rows added into one buffer per optimiser step"


class EmbeddingRowGrad:
    """The input embedding lookup with its weight gradient added in place, by token row,
    into weight.grad (made once per optimiser step, after the trainer has cleared it),
    bypassing autograd's dense per-sequence gradient. Installed as the embedding module's
    forward, so the module, its name and the saved weights are unchanged."""

    def __init__(self, module: Any):
        self.module = module  # a plain nn.Embedding (embedding_gradient_mode checks)

    def __call__(self, ids: Any) -> Any:
        return _row_grad_lookup().apply(self.module.weight, ids, self.module.padding_idx)


@functools.cache
def _row_grad_lookup() -> Any:
    """The autograd function behind EmbeddingRowGrad (made on first use: torch is imported lazily)."""
    import torch

    class Lookup(torch.autograd.Function):
        @staticmethod
        def forward(ctx, weight, ids, padding_idx):
            ctx.save_for_backward(ids)
            ctx.weight, ctx.padding_idx = weight, padding_idx
            return torch.nn.functional.embedding(ids, weight, padding_idx)

        @staticmethod
        def backward(ctx, grad):
            (ids,) = ctx.saved_tensors
            weight, flat = ctx.weight, ids.reshape(-1)
            rows = grad.reshape(-1, grad.shape[-1]).to(weight.dtype)
            if ctx.padding_idx is not None:  # as autograd's own: the padding row gets no gradient
                rows = rows * (flat != ctx.padding_idx).unsqueeze(-1).to(rows.dtype)
            if weight.grad is None:
                weight.grad = torch.zeros_like(weight)
            weight.grad.index_add_(0, flat, rows)
            return None, None, None

    return Lookup


def install_embedding_row_grad(model: Any) -> None:
    module = model.get_input_embeddings()
    module.forward = EmbeddingRowGrad(module)


def _trainer_class():
    """TRL's SFTTrainer, with the loss computed at response positions only where the
    config says so (`lm_head_positions`); everything else is TRL's."""
    import torch
    from trl import SFTTrainer

    class Trainer(SFTTrainer):
        lm_head_positions = "trl"

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.lm_head_positions != "response" or return_outputs or self.aux_loss_enabled:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            logprobs, logits, targets = response_token_logprobs(model, inputs)
            # TRL's normalisation: the tokens of the whole accumulated global batch
            count = logprobs.numel() if num_items_in_batch is None else num_items_in_batch
            loss = -logprobs.sum() / torch.as_tensor(count).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            self._log_token_metrics(inputs, logits, targets)
            return loss

        def _log_token_metrics(self, inputs, logits, targets) -> None:
            """The metrics TRL logs beside the loss: entropy, top-1 accuracy, tokens seen."""
            mode = "train" if self.model.training else "eval"
            with torch.no_grad():
                logp = torch.log_softmax(logits, -1)
                entropy = -(logp.exp() * logp).sum(-1)
                gather = self.accelerator.gather_for_metrics
                valid = gather(torch.tensor(targets.numel(), device=logits.device)).sum()
                ent = gather(entropy.sum()).sum()
                top1 = gather((logits.argmax(-1) == targets).sum()).sum()
            self._metrics[mode]["entropy"].append((ent / valid).item() if valid > 0 else 0.0)
            self._metrics[mode]["mean_token_accuracy"].append((top1 / valid).item() if valid > 0 else 0.0)
            if mode == "train":
                if "attention_mask" in inputs:
                    local = inputs["attention_mask"].sum()
                else:
                    local = torch.tensor(inputs["position_ids"].size(1), device=logits.device)
                self._total_train_tokens += self.accelerator.gather_for_metrics(local).sum().item() // self._tp_size
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]

    return Trainer


def load_sft_rows(path: Path) -> list[dict[str, Any]]:
    """prompt/completion conversations from a samples.jsonl."""
    rows = []
    for lineno, row in read_jsonl(path, "samples"):
        prompt, completion = row.get("prompt"), row.get("completion")
        if not isinstance(prompt, list) or not isinstance(completion, str):
            raise located(path, lineno, "each row needs prompt (chat messages) and completion (a string)")
        rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": completion}]})
    if not rows:
        raise SelfdistillError(f"{path}: no training rows")
    return rows


def world_size() -> int:
    """Processes training together (accelerate and torchrun set WORLD_SIZE)."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def accumulation_steps(config: TrainConfig, processes: int) -> int:
    """Gradient accumulation that keeps `global_batch_size` sequences per optimiser step
    whatever the number of processes (each process runs per_device_batch_size at a time)."""
    per_step = config.per_device_batch_size * processes
    if config.global_batch_size % per_step:
        raise SelfdistillError(
            f"global_batch_size {config.global_batch_size} is not a multiple of "
            f"per_device_batch_size {config.per_device_batch_size} x {processes} processes")
    return config.global_batch_size // per_step


def last_checkpoint(out: Path) -> str | None:
    """The newest checkpoint under out/checkpoints, by step number (transformers' own
    rule: checkpoint-1000 comes after checkpoint-950)."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / "checkpoints"
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def stage_key(config: TrainConfig) -> StageKey:
    """The train stage's record key: every setting (paths and progress bars aside) and the
    base model and data by content. It is pinned when training starts, so a rerun with
    other settings or other data does not resume the old checkpoints with their optimiser
    and scheduler state; it is refused."""
    from selfdistill.models import fingerprint, resolve_model

    data = Path(config.data)
    if not data.is_file():
        raise SelfdistillError(f"{data}: no such samples file")
    settings = {k: v for k, v in to_dict(config).items() if k not in ("model", "data", "out", "progress")}
    return StageKey("train", settings, {"model": fingerprint(resolve_model(config.model)),
                                        "data": "sha256:" + sha256_file(data)})


TRAIN_OUTPUTS = ["model", "loss.json", "train_config.json"]


def build_trainer(config: TrainConfig):
    """An SFTTrainer ready to train; separate from `train` so tests can inspect it."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig

    from selfdistill.models import load_model, load_tokenizer, resolve_model

    ref = resolve_model(config.model)
    tokenizer = load_tokenizer(ref)
    model = load_model(ref, dtype=load_dtype(config))
    rows = load_sft_rows(Path(config.data))
    accumulation = accumulation_steps(config, world_size())
    args = SFTConfig(
        output_dir=str(Path(config.out) / "checkpoints"),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr": config.min_learning_rate},
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        optim="adamw_torch_fused",  # the same AdamW, one fused kernel (TrainingArguments' default)
        max_length=config.max_seq_length,
        completion_only_loss=True,
        padding_free=config.padding_free,
        packing=config.packing,
        bf16=resolve_bf16(config.bf16)[0],
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=config.gradient_checkpointing,  # activation_checkpointing from transformers 5.20
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=1,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=not config.progress,
        dataset_num_proc=None,
    )
    peft_config = None
    if config.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                 lora_dropout=config.lora_dropout, target_modules="all-linear",
                                 task_type="CAUSAL_LM")
    trainer = _trainer_class()(model=model, args=args, train_dataset=Dataset.from_list(rows),
                               processing_class=tokenizer, peft_config=peft_config)
    trainer.lm_head_positions = resolve_lm_head_positions(config)[0]
    trainer.embedding_gradient = embedding_gradient_mode(trainer.model)
    if trainer.embedding_gradient[0] == "rows":
        install_embedding_row_grad(trainer.model)
    return trainer


def load_dtype(config: TrainConfig) -> str:
    """The dtype the weights are loaded in ("auto": bf16 where the hardware has it natively)."""
    from selfdistill.generation import resolve_dtype

    return resolve_dtype(config.load_dtype)[0]


def is_main_process() -> bool:
    """Rank 0 of a multi-process run (torchrun and accelerate set RANK), or a lone process."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _save_model(trainer: Any, config: TrainConfig, model_dir: Path) -> None:
    """The trained model as a plain Hugging Face directory, written once, atomically.

    Every process takes part in trainer.save_model (under ZeRO-3 or FSDP the weights are
    sharded and must be gathered); only the main process writes. A LoRA adapter is merged
    in memory where each process holds whole weights, and otherwise reloaded over the base
    model on the main process and merged there."""
    import shutil

    tmp_dir = model_dir.with_name("model.partial")
    sharded = bool(getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False))
    merge = config.method == "lora" and config.merge_lora
    if merge and not sharded:
        if is_main_process():
            trainer.model.merge_and_unload().save_pretrained(tmp_dir)
    else:
        trainer.save_model(str(tmp_dir))  # collective; writes on the main process only
    trainer.accelerator.wait_for_everyone()
    if not is_main_process():
        return
    if merge and sharded:
        from peft import PeftModel

        from selfdistill.models import load_model, resolve_model

        base = load_model(resolve_model(config.model), load_dtype(config))
        merged = PeftModel.from_pretrained(base, str(tmp_dir)).merge_and_unload()
        shutil.rmtree(tmp_dir)
        merged.save_pretrained(tmp_dir)
    trainer.processing_class.save_pretrained(tmp_dir)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    tmp_dir.rename(model_dir)


def train(config: TrainConfig) -> dict[str, Any]:
    """The `train` stage's entry point; returns a summary with the loss history. In a
    multi-process run every process trains; the main process alone writes the outputs."""
    out = Path(config.out)
    with open_stage(out, stage_key(config), {"model": config.model, "data": config.data},
                    main_process=is_main_process()) as stage:
        summary = _train(config, out)
        if is_main_process():
            stage.finish(TRAIN_OUTPUTS, {"provenance": provenance()})
    return summary


def _train(config: TrainConfig, out: Path) -> dict[str, Any]:
    trainer = build_trainer(config)
    result = trainer.train(resume_from_checkpoint=last_checkpoint(out))
    model_dir = out / "model"
    _save_model(trainer, config, model_dir)
    history = [h for h in trainer.state.log_history if "loss" in h]
    summary = {"model_dir": str(model_dir), "steps": trainer.state.global_step,
               "first_loss": history[0]["loss"] if history else None,
               "last_loss": history[-1]["loss"] if history else None}
    if not is_main_process():
        return summary
    import torch.distributed as dist

    atomic_write_text(out / "loss.json", json.dumps(history, indent=1))
    plot_loss(history, out / "loss.png")
    bf16, why = resolve_bf16(config.bf16)
    record = {"stage": "train", **to_dict(config), "resolved_preset": PRESETS.get(config.preset or ""),
              "bf16_resolved": bf16, "bf16_reason": why,
              "train_rows": len(trainer.train_dataset), "world_size": world_size(),
              "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
              "load_dtype_resolved": load_dtype(config),
              "lm_head_positions_resolved": dict(zip(("positions", "reason"), resolve_lm_head_positions(config))),
              "embedding_gradient": dict(zip(("mode", "reason"), trainer.embedding_gradient)),
              "train_metrics": result.metrics,  # train_runtime, samples and steps per second
              "distributed": {"deepspeed": bool(trainer.is_deepspeed_enabled), "fsdp": bool(trainer.is_fsdp_enabled),
                              "backend": dist.get_backend() if dist.is_initialized() else None},
              # every TrainingArguments value, defaults included (max_grad_norm, adam_epsilon, ...)
              "training_arguments": json.loads(json.dumps(trainer.args.to_dict(), default=str)),
              "provenance": provenance()}
    atomic_write_text(out / "train_config.json", json.dumps(record, indent=1))
    return summary


def loss_figure(history: list[dict[str, Any]]) -> Any:
    """The loss curve (train writes it as loss.png; the HTML report inlines it)."""
    from selfdistill.plots import pyplot

    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history], marker=".")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("SFT loss (completion tokens)")
    ax.set_title("selfdistill train")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_loss(history: list[dict[str, Any]], path: Path) -> None:
    from selfdistill.plots import pyplot

    fig = loss_figure(history)
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
