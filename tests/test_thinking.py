"""Thinking models whose chat template opens `<think>` in the prompt (Qwen3-*-Thinking-2507):
only what follows the thought is an answer, through `sample`, `eval` and the completions path."""

import json
import shutil

import pytest

from selfdistill.cli import main
from selfdistill.generation import DecodingConfig
from selfdistill.problems import load_problems
from selfdistill.prompts import extract_code, opens_thought, render_chat, strip_thinking
from selfdistill.sampling import SampleConfig, apply_filter, sample

# the shape of Qwen3-Thinking-2507's template: the generation prompt ends inside a thought
THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
DEC = DecodingConfig(temperature=1.0, top_k=20, top_p=0.9, min_p=0.0, max_tokens=16, n=2, seed=3)


@pytest.fixture(scope="module")
def thinking_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny test model with a chat template that opens a thought, built locally."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-thinking")
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = THINKING_TEMPLATE
    tok.save_pretrained(out)
    return out


def test_the_rendered_prompt_says_whether_a_thought_is_open(thinking_model_dir, tiny_model_dir):
    from transformers import AutoTokenizer

    msgs = [{"role": "user", "content": "Add two numbers."}]
    assert opens_thought(render_chat(AutoTokenizer.from_pretrained(thinking_model_dir), msgs))
    assert not opens_thought(render_chat(AutoTokenizer.from_pretrained(tiny_model_dir), msgs))
    assert not opens_thought("<think>\nold thought</think>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("response, thought_open, code", [
    # the prompt opened the thought: a draft inside it is never the answer
    ("```python\ndraft()\n```\nhmm</think>\n```python\nright()\n```", True, "right()"),
    ("```python\ndraft()\n```\nstill thinking", True, None),  # cut off mid-thought
    ("reasoning</think>\nno code after the thought", True, None),
    # a lone closing tag says the prompt opened it, even when nothing else does
    ("```python\ndraft()\n```</think>\n```python\nright()\n```", False, "right()"),
    ("```python\ndraft()\n```\n</think>\nno code", False, None),
    # both tags in the response, and a model that does not think
    ("<think>```python\ndraft()\n```</think>```python\nright()\n```", False, "right()"),
    ("```python\nright()\n```", False, "right()"),
])
def test_only_what_follows_the_thought_is_judged(response, thought_open, code):
    assert extract_code(response, thought_open) == code


def test_an_unfinished_thought_is_empty_for_the_filters():
    rows = [{"completion": "a\nlong\nthought", "thought_open": True},
            {"completion": "thought</think>\nline one\nline two", "thought_open": True},
            {"completion": "thought</think>\none line", "thought_open": True}]
    assert strip_thinking(rows[0]["completion"], True) == ""
    assert apply_filter(rows, "paper") == [rows[1]]
    assert apply_filter(rows, "none") == rows  # the rows are kept whole, thought included


def test_sample_and_eval_through_a_model_that_opens_its_thought(thinking_model_dir, tmp_path, capsys):
    """The tiny model's random text never closes the thought: no response has an answer."""
    summary = sample(SampleConfig(model=str(thinking_model_dir), problems="humaneval", out=str(tmp_path / "s"),
                                  decoding=DEC, filter="paper", batch_size=4, limit=3, progress=False))
    rows = [json.loads(line) for line in (tmp_path / "s" / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["thought_open"] for r in rows)
    assert all("</think>" not in r["completion"] for r in rows)
    assert summary["unfinished_thought_share"] == 1.0 and summary["with_code_share"] == 0.0
    assert summary["empty_share"] == 1.0 and summary["kept"] == 0
    assert main(["eval", "--problems", "humaneval", "--limit", "3", "--model", str(thinking_model_dir),
                 "--temperature", "1.0", "--top-k", "20", "--top-p", "0.9", "--min-p", "0", "--max-tokens", "16",
                 "--n", "2", "--seed", "3", "--batch-size", "4", "--out", str(tmp_path / "e"), "--no-progress"]) == 0
    samples = [json.loads(line) for line in (tmp_path / "e" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and all(s["thought_open"] and s["code"] is None for s in samples)
    assert {s["result"]["status"] for s in samples} == {"no_code"}


def test_completions_with_and_without_the_opening_tag(tmp_path, capsys):
    p = load_problems("humaneval[:1]").problems[0]
    right = f"```python\n{p.starter_code}{p.metadata['canonical_solution']}```"
    wrong = f"```python\n{p.starter_code}    return None\n```"
    rows = [
        {"completion": f"<think>{wrong}</think>\n{right}"},  # both tags: passed
        {"completion": f"{wrong}\n</think>\n{right}"},  # the prompt opened it: passed
        {"completion": f"{right}\n</think>\nno code"},  # the right code was only a draft
        {"completion": f"{right}\nthe thought goes on", "thought_open": True},  # cut off mid-thought
        {"completion": right},  # a model that does not think
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"task_id": p.task_id, **r}) + "\n" for r in rows))
    assert main(["eval", "--problems", "humaneval[:1]", "--completions", str(path), "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [s["status"] for s in results["problems"][0]["samples"]] == [
        "passed", "passed", "no_code", "no_code", "passed"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": p.task_id, "completion": right, "thought_open": "yes"}) + "\n")
    assert main(["eval", "--problems", "humaneval[:1]", "--completions", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "bad.jsonl:1: thought_open" in capsys.readouterr().err
