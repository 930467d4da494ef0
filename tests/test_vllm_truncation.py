"""selfdistill's vLLM logits processor on constructed logits, with vLLM's own batch-update
classes: the support is exactly `distributions.support` (temperature, top-k, top-p, min-p in
that order, where vLLM v1's own sampler would apply min-p first), per request, through
additions, removals and moves in the persistent batch."""


import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed (SELFDISTILL_VLLM=1 bash scripts/install.sh)")

from vllm import SamplingParams  # noqa: E402
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality  # noqa: E402

from selfdistill.distributions import support  # noqa: E402
from selfdistill.generation.vllm_truncation import KEY, TruncationProcessor  # noqa: E402

pytestmark = pytest.mark.vllm


def params(top_k=0, top_p=1.0, min_p=0.0):
    return SamplingParams(temperature=1.0, top_k=-1, top_p=1.0, min_p=0.0,
                          extra_args={KEY: {"top_k": top_k, "top_p": top_p, "min_p": min_p}})


def order_sensitive_logits():
    """0.45, 0.35 and 40 tokens of 0.005. top-p 0.5 then min-p 0.02 keeps the first two;
    min-p first drops the 40 small ones, renormalises to 0.5625 / 0.4375, and top-p 0.5
    then keeps the first only."""
    probs = torch.tensor([0.45, 0.35] + [0.005] * 40)
    return probs.log()[torch.randperm(42, generator=torch.Generator().manual_seed(0))]


def kept(row):
    return set(torch.isfinite(row).nonzero().squeeze(-1).tolist())


def test_top_p_before_min_p_as_requested_not_vllms_order():
    logits = order_sensitive_logits()
    first, second = int(logits.argmax()), int(logits.topk(2).indices[1])
    proc = TruncationProcessor(None, torch.device("cpu"), False)
    proc.update_state(BatchUpdate(batch_size=1, removed=[], added=[(0, params(0, 0.5, 0.02), [], [])], moved=[]))
    out = proc.apply(logits[None].clone())
    assert kept(out[0]) == {first, second}  # the paper's order; vLLM's own would keep {first}
    finite = out[0][list(kept(out[0]))]
    assert torch.equal(finite, logits[list(kept(out[0]))])  # kept logits unchanged


@pytest.mark.parametrize("top_k,top_p,min_p", [(5, 1.0, 0.0), (0, 0.9, 0.0), (0, 1.0, 0.1), (20, 0.8, 0.0),
                                               (3, 0.5, 0.3), (0, 0.3, 0.05)])
def test_support_equals_the_reference_definition(top_k, top_p, min_p):
    gen = torch.Generator().manual_seed(top_k)
    logits = torch.randn(4, 1000, generator=gen) * 3
    proc = TruncationProcessor(None, torch.device("cpu"), False)
    added = [(i, params(top_k, top_p, min_p), [], []) for i in range(4)]
    proc.update_state(BatchUpdate(batch_size=4, removed=[], added=added, moved=[]))
    out = proc.apply(logits.clone())
    for row, result in zip(logits, out):
        values, order = row.sort(descending=True)
        expected = set(order[support(values[None], top_k, top_p, min_p)[0]].tolist())
        assert kept(result) == expected and len(expected) >= 1


def test_rows_follow_the_persistent_batch():
    """Per-request settings survive moves and swaps; removed and untruncated rows are left alone."""
    logits = torch.randn(3, 200, generator=torch.Generator().manual_seed(1))
    proc = TruncationProcessor(None, torch.device("cpu"), False)
    plain = SamplingParams(temperature=1.0)
    proc.update_state(BatchUpdate(batch_size=3, removed=[], moved=[],
                                  added=[(0, params(top_k=2), [], []), (1, plain, [], []),
                                         (2, params(top_k=7), [], [])]))
    out = proc.apply(logits.clone())
    assert [len(kept(r)) for r in out] == [2, 200, 7]
    proc.update_state(BatchUpdate(batch_size=3, removed=[], added=[],
                                  moved=[(0, 2, MoveDirectionality.SWAP)]))
    assert [len(kept(r)) for r in proc.apply(logits.clone())] == [7, 200, 2]
    proc.update_state(BatchUpdate(batch_size=2, removed=[0], added=[],
                                  moved=[(2, 0, MoveDirectionality.UNIDIRECTIONAL)]))
    assert [len(kept(r)) for r in proc.apply(logits[:2].clone())] == [2, 200]


def test_settings_are_validated_and_vllms_own_must_be_off():
    with pytest.raises(ValueError, match="must be off"):
        TruncationProcessor.validate_params(SamplingParams(top_k=5, extra_args={KEY: {"top_k": 5, "top_p": 1.0,
                                                                                       "min_p": 0.0}}))
    with pytest.raises(ValueError, match="top_p"):
        TruncationProcessor.validate_params(params(top_p=0.0))
    TruncationProcessor.validate_params(params(top_k=20, top_p=0.8))
