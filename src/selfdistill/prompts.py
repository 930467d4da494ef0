"""Prompt templates (LiveCodeBench style) and extraction of code from a model response.

Templates are data: `TEMPLATES` is recorded verbatim beside every generation output.
The prompt is a single user turn, rendered later through the model's own chat template.
Extraction follows LiveCodeBench: drop `<think>...</think>`, then take the lines between
the last two lines that contain a code fence. No fenced block means no code.

Thinking models: the chat templates of Qwen3-*-Thinking-2507 end the generation prompt
with `<think>`, so the response holds only the closing `</think>`. Whether the rendered
prompt left a thought open (`opens_thought`) travels with every generated response
(`thought_open`), and only what follows the thought is an answer: a response whose
thought never closes has no answer (no code, and "empty" for the sampling filters), so a
draft from inside a cut-off thought is never judged. A closing `</think>` with no opening
before it means the prompt opened the thought, also when nothing says so (a completions
file of such a model).
"""

from __future__ import annotations

import re

from selfdistill.problems import Problem

TEMPLATES = {
    "system": (
        "You are an expert Python programmer. You will be given a question (problem "
        "specification) and will generate a correct Python program that matches the "
        "specification and passes all tests."
    ),
    "stdin": (
        "{system}\n\n### Question:\n{statement}\n\n### Format: Read the inputs from stdin solve "
        "the problem and write the answer to stdout (do not directly test on the sample inputs). "
        "Enclose your code within delimiters as follows. Ensure that when the python program "
        "runs, it reads the inputs, runs the algorithm and writes output to STDOUT.\n"
        "```python\n# YOUR CODE HERE\n```\n\n### Answer: (use the provided format with backticks)\n\n"
    ),
    "functional": (
        "{system}\n\n### Question:\n{statement}\n\n### Format: You will use the following starter "
        "code to write the solution to the problem and enclose your code within delimiters.\n"
        "```python\n{starter_code}\n```\n\n### Answer: (use the provided format with backticks)\n\n"
    ),
    "humaneval": (
        "{system}\n\n### Question:\nComplete the following Python function.\n\n"
        "### Format: Write the complete function, including the signature, and enclose your "
        "code within delimiters.\n```python\n{starter_code}\n```\n\n"
        "### Answer: (use the provided format with backticks)\n\n"
    ),
}

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def render_prompt(problem: Problem, templates: dict[str, str] = TEMPLATES) -> str:
    """The user-turn text for a problem."""
    kind = problem.kind
    if kind == "functional" and not problem.starter_code.strip():
        kind = "stdin"  # a functional problem without starter code reads like a stdin one
    return templates[kind].format(
        system=templates["system"],
        statement=problem.statement.strip(),
        starter_code=problem.starter_code.rstrip(),
    )


def prompt_messages(problem: Problem, templates: dict[str, str] = TEMPLATES) -> list[dict[str, str]]:
    return [{"role": "user", "content": render_prompt(problem, templates)}]


def opens_thought(prompt_text: str) -> bool:
    """Whether a rendered prompt (generation prompt included) leaves a `<think>` open."""
    return prompt_text.rfind("<think>") > prompt_text.rfind("</think>")


def strip_thinking(response: str, thought_open: bool = False) -> str:
    """The answer part of a response: every `<think>...</think>` removed, and nothing from
    a thought that never closes (one the prompt opened included)."""
    if thought_open:
        response = "<think>" + response
    close, opening = response.find("</think>"), response.find("<think>")
    if close != -1 and (opening == -1 or close < opening):
        response = "<think>" + response  # the prompt opened it, though nobody said so
    response = _THINK.sub("", response)
    if "<think>" in response:  # an unterminated thought: nothing after it is an answer
        response = response[: response.index("<think>")]
    return response


def extract_code(response: str, thought_open: bool = False) -> str | None:
    """The last fenced code block of the response's answer, or None when there is none."""
    lines = strip_thinking(response, thought_open).split("\n")
    fences = [i for i, line in enumerate(lines) if "```" in line]
    if len(fences) < 2:
        return None
    code = "\n".join(lines[fences[-2] + 1 : fences[-1]])
    return code if code.strip() else None


def answer_of(row: dict) -> str:
    """A generated (or given) row's answer: its completion after the thought, by the row's
    own `thought_open` (absent: the prompt opened none)."""
    return strip_thinking(row["completion"], row.get("thought_open", False))


def code_of(row: dict) -> str | None:
    """The code a row's answer holds (extract_code of its completion, by its `thought_open`)."""
    return extract_code(row["completion"], row.get("thought_open", False))


def render_chat(tokenizer, messages: list[dict[str, str]], completion: str | None = None) -> str:
    """The one rendering of chat messages through a model's chat template, shared by every
    local engine and by teacher-forcing: the prompt with the generation prompt appended,
    followed by `completion` when one is given."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text if completion is None else text + completion
