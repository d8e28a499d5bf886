# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The channel-wise temporal conv (multiply-adds of the features rolled
along T, boundary weights zeroed) against the grouped Conv1d it restates,
and the graph torch.compile traces of it: no slice writes, which inductor
compiled to kernels slower than eager, and no padding copy."""
# mmaction_tdx first: its compat fixes make `mmaction.models` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
import torch
from test_temporal_modules import C, _features, conv1d_reference

from mmaction_tdx.models.common.temporal_modules import ChannelwiseTemporalConv


@pytest.mark.parametrize('kernel_size,t', [(3, 8), (5, 8), (5, 2), (3, 1),
                                           (1, 3), (7, 3)])
def test_forward_equals_the_conv1d(kernel_size, t):
    torch.manual_seed(0)
    module = ChannelwiseTemporalConv(
        C, t, kernel_size=kernel_size,
        init='random' if kernel_size > 1 else 'identity').double()
    x = _features(t=t)
    x_before = x.clone()
    want = conv1d_reference(x, module.conv.weight, t)
    torch.testing.assert_close(module(x), want, rtol=0, atol=1e-12)
    assert torch.equal(x, x_before)  # the input is never written


def test_compiled_forward_is_the_rolled_sum():
    """Under torch.compile the traced graph rolls and sums: no in-place
    op, no slice_scatter (what made inductor's kernels slow) and no pad
    (a copy of the features, and three padded gradients in training);
    the result equals eager."""
    torch.manual_seed(0)
    module = ChannelwiseTemporalConv(C, 4, init='random').double()
    x = _features(t=4)
    ops = []

    def record(gm, example_inputs):
        ops.extend(str(node.target) for node in gm.graph.nodes
                   if node.op in ('call_function', 'call_method'))
        return gm.forward  # dynamo's graph run as is: no code generation

    compiled = torch.compile(module, backend=record, dynamic=False)
    try:
        torch.testing.assert_close(
            compiled(x), module(x), rtol=0, atol=1e-12)
    finally:
        torch._dynamo.reset()
    assert any('roll' in op for op in ops), ops
    assert not any('pad' in op for op in ops), ops
    assert not any(op.endswith('_') or 'scatter' in op or 'setitem' in op
                   or 'iadd' in op
                   for op in ops), ops


@pytest.mark.parametrize('kernel_size,t', [(3, 4), (5, 3), (3, 1)])
def test_gradients_equal_the_conv1d(kernel_size, t):
    """The backward of the rolled sum (a roll of the gradient, the masked
    weights) is the grouped Conv1d's, for the input and the weight."""
    torch.manual_seed(0)
    module = ChannelwiseTemporalConv(
        C, t, kernel_size=kernel_size, init='random').double()
    x = _features(t=t).requires_grad_()
    grad_out = torch.randn_like(x)
    grads = torch.autograd.grad((module(x) * grad_out).sum(),
                                (x, module.conv.weight))
    weight = module.conv.weight.detach().clone().requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    want = torch.autograd.grad(
        (conv1d_reference(x_ref, weight, t) * grad_out).sum(),
        (x_ref, weight))
    for got, expected in zip(grads, want):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
