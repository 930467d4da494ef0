"""The `selfdistill` command line: one subcommand per stage; flags only fill a config.

    selfdistill problems SPEC [--json]
    selfdistill eval  [--config YAML] --problems SPEC (--completions FILE | --model M ...) --out DIR
    selfdistill sample [--config YAML] --model M --problems SPEC ... --out DIR
    selfdistill train  [--config YAML] --model M --data DIR/samples.jsonl --out DIR
    selfdistill merge  SHARD_DIR... --out DIR
    selfdistill report RUN_DIR
    selfdistill sweep  [--config YAML] --models NAME=M,... --problems SPEC --t-eval T,... (decoding) --out DIR
    selfdistill analyze [--config YAML] --samples FILE --base M --ssd M --top-k K --top-p P --min-p M --out DIR
    selfdistill toy    [--config YAML] [--t-train T ...] [--out DIR]
    selfdistill run    CONFIG.yaml [KEY=VALUE ...] [--plan] [--rebuild]

`selfdistill --verbose COMMAND ...` shows the libraries' own logs and progress bars too.
Every flag overrides the YAML key of the same name (decoding, engine and sandbox flags land
in the `decoding:`, `engine:` and `sandbox:` sections). Bad input prints one `error:` line, exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from selfdistill.errors import SelfdistillError

DECODING_FLAGS = {
    "temperature": (float, "sampling temperature (0 = greedy)"),
    "top_k": (int, "top-k truncation (0 = off)"),
    "top_p": (float, "top-p truncation (1.0 = off)"),
    "min_p": (float, "min-p truncation (0.0 = off)"),
    "max_tokens": (int, "maximum new tokens"),
    "n": (int, "responses per problem"),
    "seed": (int, "base seed"),
}
def _boolean(text: str) -> bool:
    """A flag value true/false (argparse's `type=bool` would read "false" as True)."""
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


ENGINE_FLAGS = {
    "backend": (str, "generation engine: transformers | vllm | openai"),
    "dtype": (str, "auto (bf16 where the hardware has it natively, else fp32) | bfloat16 | float32"),
    "base_url": (str, "openai: server URL, e.g. http://127.0.0.1:8000/v1"),
    "api_key_env": (str, "openai: environment variable holding the API key"),
    "endpoint": (str, "openai: chat | completions"),
    "tokenizer": (str, "openai completions: local model whose chat template renders prompts"),
    "concurrency": (int, "openai: requests in flight"),
    "max_retries": (int, "openai: retries with backoff on 429/5xx/timeouts"),
    "request_timeout_s": (float, "openai: per-request timeout in seconds"),
    "tensor_parallel_size": (int, "vllm: GPUs per model"),
    "max_model_len": (int, "vllm: context length (prompt + response)"),
    "gpu_memory_utilization": (float, "vllm on GPU: share of GPU memory"),
    "enforce_eager": (_boolean, "vllm: eager execution, no torch.compile (true | false)"),
}
SANDBOX_FLAGS = {
    "timeout_s": (int, "per-test time limit in seconds"),
    "memory_mb": (int, "address-space limit per program"),
    "workers": (int, "programs judged in parallel (0 = CPU count)"),
}


def _add_flags(parser: argparse.ArgumentParser, flags: dict[str, tuple[type, str]], section: str) -> None:
    for name, (tp, help_) in flags.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=f"{section}.{name}", type=tp,
                            default=None, help=help_)


def _flag_type(hint: Any) -> Any:
    """argparse type for a config field's type hint (bool flags take true/false)."""
    import types
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is list and args and args[0] in (int, float, str):
        item = args[0]
        return lambda text: [item(x) for x in text.split(",") if x.strip()]  # 1,5,10
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if set(args) == {bool, str}:
            return lambda text: _boolean(text) if text.lower() in ("true", "false", "1", "0", "yes", "no") else text
        hint = args[0] if len(args) == 1 else str
    return _boolean if hint is bool else hint if hint in (int, float, str) else str


def _add_dataclass_flags(parser: argparse.ArgumentParser, where: str, skip: tuple[str, ...] = ()) -> None:
    """--config and one flag per field of a config dataclass, typed from its hint, with its
    help: the dataclass is the one source of truth."""
    import dataclasses
    import importlib
    import typing

    module, name = where.rsplit(".", 1)
    cls = getattr(importlib.import_module(f"selfdistill.{module}"), name)
    hints = typing.get_type_hints(cls)
    parser.add_argument("--config", help=f"YAML whose keys mirror {name}'s fields (flags override them)")
    from selfdistill.generation import Truncation

    for f in dataclasses.fields(cls):
        if hints[f.name] is Truncation:  # --top-k ... (or --train-top-k ... for train_truncation)
            prefix = f.name.removesuffix("truncation").replace("_", "-")
            for sub in dataclasses.fields(Truncation):
                parser.add_argument(f"--{prefix}{sub.name.replace('_', '-')}", dest=f"{f.name}.{sub.name}",
                                    type=hints_of(Truncation)[sub.name], help=sub.metadata.get("help"))
            continue
        if dataclasses.is_dataclass(hints[f.name]) or f.name in skip:
            continue  # a positional argument, or a nested section (engine, sandbox): its own flags fill it
        if f.name == "progress":
            parser.add_argument("--no-progress", dest="progress", action="store_const", const=False)
            continue
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_flag_type(hints[f.name]),
                            help=f.metadata.get("help"))


def hints_of(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _add_generation_flags(p: argparse.ArgumentParser, stage: str) -> None:
    """Flags shared by the stages that generate: model, problems, output, decoding."""
    p.add_argument("--config", help=f"YAML whose keys mirror the {stage} config")
    p.add_argument("--model", help="bundled name, .gguf file, model directory or hub id")
    p.add_argument("--problems", help="problem spec (see `selfdistill problems --help`)")
    p.add_argument("--out", help="output directory")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="prompts per generation batch")
    p.add_argument("--limit", type=int, help="only the first N problems")
    p.add_argument("--shard", help="i/N: only this shard's batches (join with `selfdistill merge`)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False)
    _add_flags(p, DECODING_FLAGS, "decoding")
    _add_flags(p, ENGINE_FLAGS, "engine")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("command", "func", "config", "verbose")}


def _load(cls: type, args: argparse.Namespace, transform: Any = None) -> Any:
    from selfdistill.config import build, merge, read_yaml

    base = read_yaml(args.config) if getattr(args, "config", None) else {}
    data = merge(base, _overrides(args))
    return build(cls, transform(data) if transform else data, where=args.config or "flags")


def cmd_problems(args: argparse.Namespace) -> None:
    from selfdistill.problems import load_problems

    summary = load_problems(args.spec).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{summary['spec']}: {summary['count']} problems ({summary['with_tests']} with tests)")
    print("  by kind:       " + ", ".join(f"{k} {v}" for k, v in summary["by_kind"].items()))
    print("  by difficulty: " + ", ".join(f"{k} {v}" for k, v in summary["by_difficulty"].items()))
    if len(summary["by_source"]) > 1:
        print("  by source:     " + ", ".join(f"{k} {v}" for k, v in summary["by_source"].items()))
    excluded = summary["resolved"].get("excluded")
    if excluded:
        print(f"  excluded:      {len(excluded)} ({'; '.join(f'{k}: {v}' for k, v in excluded.items())})")
    window = summary["resolved"].get("window")
    if window:
        print(f"  window:        {window['name']} ({window['start']} .. {window['end']})")


def cmd_eval(args: argparse.Namespace) -> None:
    from selfdistill.evaluation import EvalConfig, evaluate, format_table

    config = _load(EvalConfig, args)
    result = evaluate(config)
    print(format_table(result.metrics, title=f"{config.problems} -> {result.out}/results.json"))


def cmd_sample(args: argparse.Namespace) -> None:
    from selfdistill.sampling import SampleConfig, format_summary, sample

    summary = sample(_load(SampleConfig, args))
    print(format_summary(summary))


def cmd_train(args: argparse.Namespace) -> None:
    from selfdistill.training import TrainConfig, train, with_preset

    result = train(_load(TrainConfig, args, transform=with_preset))
    print(f"trained {result['steps']} steps, loss {result['first_loss']} -> {result['last_loss']}; "
          f"model: {result['model_dir']}")


def cmd_merge(args: argparse.Namespace) -> None:
    from selfdistill.evaluation import format_table
    from selfdistill.merge import MergeConfig, merge
    from selfdistill.sampling import format_summary

    result = merge(MergeConfig(shards=args.shards, out=args.out))
    print(format_summary(result) if "generated" in result else format_table(result, title=args.out))


def cmd_report(args: argparse.Namespace) -> None:
    from selfdistill.report import ReportConfig, report

    paths = report(_load(ReportConfig, args))
    print(f"written: {paths['json']}, {paths['md']}, {paths['html']}")


def cmd_sweep(args: argparse.Namespace) -> None:
    from selfdistill.sweep import SweepConfig, format_sweep, sweep

    config = _load(SweepConfig, args)
    print(format_sweep(sweep(config)))
    print(f"written: {config.out}/sweep.json, sweep.png, sweep.svg")


def cmd_analyze(args: argparse.Namespace) -> None:
    from selfdistill.analyze import AnalyzeConfig, analyze, format_analysis

    config = _load(AnalyzeConfig, args)
    print(format_analysis(analyze(config)))
    print(f"written: {config.out}/analyze.json, analyze.png, analyze.svg")


def cmd_toy(args: argparse.Namespace) -> None:
    from selfdistill.toy import ToyConfig, format_toy, run_toy

    config = _load(ToyConfig, args)
    print(format_toy(run_toy(config)))
    if config.out:
        print(f"written: {config.out}/toy.json, toy.png, toy.svg")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs (dotted keys, YAML values: 8, 1e-4, false, [0.5, 1.0]) for a config."""
    import yaml

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or not all(key.split(".")):
            raise SelfdistillError(f"override {item!r}: expected KEY=VALUE, e.g. training.max_steps=8")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise SelfdistillError(f"override {item!r}: malformed value ({e})") from None
        if out[key] is None:
            raise SelfdistillError(f"override {item!r}: no value")
    return out


def cmd_run(args: argparse.Namespace) -> None:
    from selfdistill.config import build, merge, read_yaml
    from selfdistill.pipeline import RunConfig, run

    data = merge(read_yaml(args.config), parse_overrides(args.overrides))
    data = merge(data, {k: v for k, v in _overrides(args).items() if k != "overrides"})
    run(build(RunConfig, data, where=args.config), overrides=list(args.overrides))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfdistill", description=__doc__.split("\n")[0])
    parser.add_argument("--verbose", action="store_true",
                        help="show the libraries' own logs, warnings and progress bars (vLLM, transformers, ...)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("problems", help="list a problem source's counts by kind and difficulty")
    p.add_argument("spec", help="humaneval | leetcode[:train|:eval] | lcb:PATH[#v6] | rstar:PATH | jsonl:PATH")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_problems)

    p = sub.add_parser("eval", help="judge responses (from a file or a model) and report pass@k")
    p.add_argument("--completions", help="JSONL rows with task_id and completion")
    _add_generation_flags(p, "eval")
    _add_flags(p, SANDBOX_FLAGS, "sandbox")
    p.add_argument("--unsafe-no-isolation", dest="sandbox.isolation", action="store_const", const="none",
                   help="run model-written programs without the OS sandbox (see SECURITY.md)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sample", help="sample SSD training data from the frozen model")
    p.add_argument("--filter", help="post-filter: none | paper | release")
    _add_generation_flags(p, "sample")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("train", help="plain SFT on the samples (full or LoRA)")
    _add_dataclass_flags(p, "training.TrainConfig")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("merge", help="join the shards of a sharded sample or eval")
    p.add_argument("shards", nargs="+", help="the shards' output directories")
    p.add_argument("--out", required=True, help="merged output directory")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("report", help="report.md and a self-contained report.html for a run directory")
    p.add_argument("run_dir", help="a `selfdistill run` directory")
    _add_dataclass_flags(p, "report.ReportConfig", skip=("run_dir",))
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sweep", help="pass@k vs T_eval for several models; best-tuned comparison")
    _add_dataclass_flags(p, "sweep.SweepConfig")
    _add_flags(p, ENGINE_FLAGS, "engine")
    _add_flags(p, SANDBOX_FLAGS, "sandbox")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("analyze", help="lock/fork diagnostics: teacher-force responses through base and SSD")
    _add_dataclass_flags(p, "analyze.AnalyzeConfig")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("toy", help="SSD's lock/fork mechanism computed exactly on a toy language")
    _add_dataclass_flags(p, "toy.ToyConfig")
    p.set_defaults(func=cmd_toy)

    p = sub.add_parser("run", help="the whole SSD loop from one YAML config")
    p.add_argument("config", help="run config YAML (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="override config fields by dotted key, e.g. training.max_steps=8 engine.backend=transformers")
    p.add_argument("--plan", dest="plan", action="store_const", const=True,
                   help="print every stage as fresh / stale / missing with the reason; run nothing")
    p.add_argument("--rebuild", dest="rebuild", action="store_const", const=True,
                   help="recompute stale stages and every stage after them (otherwise a stale stage is an error)")
    p.add_argument("--out", help="run directory (overrides the YAML)")
    p.add_argument("--stop-after", dest="stop_after", choices=["base_eval", "sample"],
                   help="stop after this stage (train on many GPUs from RUN/train.yaml, then rerun)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False)
    p.set_defaults(func=cmd_run)
    return parser


def quiet_libraries() -> None:
    """Without --verbose: our own progress bars and summary lines only. vLLM's, transformers'
    and the hub's info logs, warnings and progress bars are turned off (set before they
    are imported; a variable the user set is kept)."""
    import logging
    import os
    import warnings

    for key, value in (("VLLM_LOGGING_LEVEL", "ERROR"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"),
                       ("TOKENIZERS_PARALLELISM", "false"), ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")):
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("vllm", "transformers", "torch", "datasets", "accelerate", "peft", "trl", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    from selfdistill.config import git_revision

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if not args.verbose:
        quiet_libraries()
    if args.command == "run":  # KEY=VALUE overrides may stand after the flags too
        args.overrides += [e for e in extra if "=" in e and not e.startswith("-")]
        extra = [e for e in extra if e not in args.overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    git_revision()  # pin the code revision this run records, before any long work
    try:
        args.func(args)
    except SelfdistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is on disk; rerun the same command to resume",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
