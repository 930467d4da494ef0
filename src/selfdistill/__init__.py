"""selfdistill: Simple Self-Distillation (SSD) for code LLMs, from sampling to report.

Stages (one module each, one entry function taking a typed config): problems, prompts,
generation/rollouts, sampling, training, judge, evaluation, pipeline, report.
Run `selfdistill --help` for the command line.
"""

__version__ = "0.1.0"
