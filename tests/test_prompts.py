"""Prompt rendering and LiveCodeBench-style code extraction."""

from selfdistill.problems import Problem
from selfdistill.prompts import TEMPLATES, extract_code, render_prompt


def test_last_fenced_block_wins():
    text = "first\n```python\nx = 1\n```\nthen\n```python\ny = 2\nprint(y)\n```\nbye"
    assert extract_code(text) == "y = 2\nprint(y)"


def test_no_block_means_no_code():
    assert extract_code("def f():\n    return 1") is None
    assert extract_code("```python\n```") is None
    assert extract_code("only one fence ```") is None


def test_thinking_is_removed_before_extraction():
    text = "<think>\n```python\nwrong()\n```\n</think>\n```python\nright()\n```"
    assert extract_code(text) == "right()"
    assert extract_code("<think>```python\nunfinished()\n```") is None


def test_templates_follow_the_problem_kind():
    stdin = Problem("a", "Add two numbers.", "stdin")
    func = Problem("b", "Add.", "functional", starter_code="class Solution:\n    def f(self): pass")
    assert "Read the inputs from stdin" in render_prompt(stdin)
    assert "class Solution:" in render_prompt(func)
    assert "starter code" in render_prompt(func)
    assert render_prompt(stdin).startswith(TEMPLATES["system"])
