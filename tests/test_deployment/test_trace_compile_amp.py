# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The other ways users run a model: ``torch.jit.trace`` and bf16 autocast
training (``torch.compile``: tests/test_models/test_backbones)."""
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
import torch
from deploy_helpers import build_quickstart, frames, load_tool
from mmaction.structures import ActionDataSample


def _samples(n):
    return [ActionDataSample().set_gt_label(i % 10) for i in range(n)]


def _train_inputs(model, batch=2, seed=0):
    """Normalised ``(N, T*L, 3, H, W)`` frames, as the preprocessor gives."""
    shape = load_tool().input_shape(model.cfg.test_pipeline)
    raw = frames(shape, batch=batch, seed=seed)
    pre = model.data_preprocessor
    return (raw - pre.mean) / pre.std


def _loss_and_grads(model, inputs, samples):
    model.zero_grad(set_to_none=True)
    losses = model(inputs, samples, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    grads = {name: p.grad.detach().clone()
             for name, p in model.named_parameters() if p.grad is not None}
    return losses, grads


def _relative_error(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


@pytest.mark.parametrize('name', ['tsn', 'tsm', 'tdn', 'tdrl'])
def test_jit_trace_gives_the_same_output(name):
    tool = load_tool()
    model = build_quickstart(name).eval()
    wrapper = tool.ExportableRecognizer(model).eval()
    shape = tool.input_shape(model.cfg.test_pipeline)
    with torch.no_grad():
        # check_trace re-runs the trace and compares the graphs (what
        # failed for TDN: "Graphs differed across invocations").
        traced = torch.jit.trace(wrapper, (frames(shape, seed=0), ))
        other = frames(shape, seed=1)
        assert torch.allclose(traced(other), wrapper(other), atol=1e-6)


def _autocast_loss_and_grads(model, inputs, samples):
    """The whole loss under bf16 autocast, as MMEngine's
    ``AmpOptimWrapper(dtype='bfloat16')`` runs ``train_step`` (the heads
    take upstream's numpy top-k accuracy on float32 scores)."""
    model.zero_grad(set_to_none=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        feats, _ = model.extract_feat(inputs, data_samples=samples)
        assert feats.dtype == torch.bfloat16  # autocast reached the backbone
        losses = model.loss(inputs, samples)
    loss, _ = model.parse_losses(losses)
    loss.backward()
    grads = {name: p.grad.detach().clone()
             for name, p in model.named_parameters() if p.grad is not None}
    return losses, grads


@pytest.mark.parametrize('name', ['tdn', 'tdrl'])
def test_bf16_autocast_training_step(name):
    """MMAction2's ``--amp`` path (autocast), in bf16 on CPU: finite
    gradients close to the fp32 ones."""
    model = build_quickstart(name, dropout_ratio=0.0).train()
    inputs, samples = _train_inputs(model), _samples(2)
    fp32_losses, fp32 = _loss_and_grads(model, inputs, samples)
    losses, bf16 = _autocast_loss_and_grads(model, inputs, samples)
    assert set(losses) == set(fp32_losses)
    if name == 'tdrl':
        assert 'loss_td' in losses
    assert set(bf16) == set(fp32)
    assert all(torch.isfinite(g).all() for g in bf16.values())
    flat32 = torch.cat([g.flatten() for g in fp32.values()])
    flat16 = torch.cat([bf16[k].float().flatten() for k in fp32])
    # bf16 keeps 8 bits of mantissa: a few percent overall.
    assert _relative_error(flat16, flat32) < 0.1
    for key in (k for k in losses if k.startswith('loss')):
        assert torch.allclose(losses[key].float(), fp32_losses[key].float(),
                              rtol=0.05, atol=1e-3), key
