# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""An independent statement of TDN's equations, for the tests.

Written from the paper (Sec. 3, Eqs. (1)-(6)) and the release
(``MCG-NJU/TDN``: ``ops/tdn_net.py``, ``ops/base_module.py``) on raw
tensors: ``F.conv2d``/``F.conv1d``/``F.linear`` with the modules' weights,
BatchNorm by hand, pooling and nearest upsampling by index arithmetic.
Nothing here calls a module or a sub-layer of ours; every option is passed
in explicitly (decoded by the test from the config it built the model
with), never read back from the module.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmaction.models.backbones.resnet_tsm import TemporalShift as MMTSM

BN_EPS = 1e-5


def randomise_bn(module, seed=7):
    """Non-trivial BN statistics and affine parameters (test inputs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * .4 - .2)
                m.running_var.copy_(torch.rand(n, generator=gen) + .5)
                m.weight.copy_(torch.rand(n, generator=gen) + .5)
                m.bias.copy_(torch.rand(n, generator=gen) * .4 - .2)
    return module


# --- primitives -------------------------------------------------------------


def bn_eval(x, bn):
    """``gamma (x - running_mean) / sqrt(running_var + eps) + beta``."""
    shape = (1, -1, 1, 1)
    return ((x - bn.running_mean.view(shape)) /
            torch.sqrt(bn.running_var.view(shape) + bn.eps) *
            bn.weight.view(shape) + bn.bias.view(shape))


def bn_train(x, bn):
    """The same with the batch's own (biased) mean and variance."""
    mean = x.mean((0, 2, 3), keepdim=True)
    var = ((x - mean)**2).mean((0, 2, 3), keepdim=True)
    return ((x - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(
        1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))


def bn_state(x, state, prefix):
    """Eval-mode BN from state-dict entries ``prefix.{running_mean,...}``."""
    shape = (1, -1, 1, 1)
    return ((x - state[f'{prefix}.running_mean'].view(shape)) /
            torch.sqrt(state[f'{prefix}.running_var'].view(shape) + BN_EPS) *
            state[f'{prefix}.weight'].view(shape) +
            state[f'{prefix}.bias'].view(shape))


def avg_pool_2x2(x):
    """2x2 average pooling, stride 2, odd trailing row/column dropped."""
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    x = x[..., :2 * h, :2 * w]
    return x.reshape(*x.shape[:-2], h, 2, w, 2).mean((-3, -1))


def upsample(x, size, mode='nearest'):
    """Nearest: output pixel ``i`` reads input pixel ``floor(i * h / H)``.
    """
    if mode == 'bilinear':
        return F.interpolate(
            x, size=tuple(size), mode='bilinear', align_corners=False)
    rows = torch.arange(size[0]) * x.shape[-2] // size[0]
    cols = torch.arange(size[1]) * x.shape[-1] // size[1]
    return x[..., rows, :][..., cols]


def relu(x):
    return torch.clamp(x, min=0)


# --- temporal modules -------------------------------------------------------


def temporal_conv_reference(x, weight, t):
    """``nn.Conv1d(C, C, k, padding=k // 2, groups=C)`` along ``T`` at every
    spatial position (TEINet's TIM, TDN's temporal conv)."""
    nt, c, h, w = x.shape
    seq = x.view(-1, t, c, h * w).permute(0, 3, 2, 1).reshape(-1, c, t)
    out = F.conv1d(seq, weight, padding=weight.shape[-1] // 2, groups=c)
    return out.view(-1, h * w, c, t).permute(0, 3, 2, 1).reshape(nt, c, h, w)


def shift_reference(x, t, shift_div=8):
    """TSM's shift, as MMAction2 states it."""
    return MMTSM.shift(x, t, shift_div=shift_div)


def mem_reference(module, x, t, last_segment='identity'):
    """TEINet's MEM: ``a_t = sigmoid(W3 (W2 x_{t+1} - W1 x_t))`` on pooled
    features, output ``X_t * a_t``."""
    nt, c, h, w = x.shape
    pooled = x.view(-1, t, c, h * w).mean(-1)
    w1, w2, w3 = (module.reduce_current, module.reduce_next, module.expand)
    diff = (F.linear(pooled[:, 1:], w2.weight, w2.bias) -
            F.linear(pooled[:, :-1], w1.weight, w1.bias))
    gate = torch.sigmoid(F.linear(diff, w3.weight, w3.bias))
    if last_segment == 'identity':
        last = torch.ones_like(gate[:, :1])
    else:
        last = torch.sigmoid(w3.bias).expand_as(gate[:, :1])
    gate = torch.cat([gate, last], 1)
    return (x.view(-1, t, c, h * w) * gate[..., None]).view(nt, c, h, w)


# --- L-TDM --------------------------------------------------------------


def ltdm_reference(m, x, num_segments, temporal_operator='difference',
                   multi_scale=True, bidirectional=True, fusion='attention',
                   upsample_mode='nearest',
                   backward_full_scale_from_forward=False, norm=bn_eval):
    """Eqs. (2), (4)-(6) as in the release (``mSEModule``)."""
    s = norm(F.conv2d(x, m.squeeze.conv.weight), m.squeeze.bn)
    a = F.conv2d(s, m.align.weight, padding=1, groups=s.shape[1])
    s = s.view(-1, num_segments, *s.shape[1:])
    a = a.view(-1, num_segments, *a.shape[1:])

    def relate(neighbour, current):
        if temporal_operator == 'difference':
            return neighbour - current
        return (neighbour + current) / 2

    zero = torch.zeros_like(s[:, :1])
    forward = torch.cat([relate(a[:, 1:], s[:, :-1]), zero], 1)
    backward = torch.cat([zero, relate(a[:, :-1], s[:, 1:])], 1)
    forward, backward = forward.flatten(0, 1), backward.flatten(0, 1)

    def full(d):
        return norm(
            F.conv2d(d, m.full_scale.conv.weight, padding=1),
            m.full_scale.bn)

    def combine(d, full_out):
        half = norm(
            F.conv2d(avg_pool_2x2(d), m.half_scale.conv.weight, padding=1),
            m.half_scale.bn)
        return (d + upsample(half, d.shape[-2:], upsample_mode) +
                full_out) / 3

    if multi_scale:
        forward_full = full(forward)
        backward_full = full(
            forward_full if backward_full_scale_from_forward else backward)
        forward = combine(forward, forward_full)
        backward = combine(backward, backward_full)

    def logits(d):
        if fusion == 'channel_attention':
            d = d.mean((2, 3), keepdim=True)
        return norm(F.conv2d(d, m.expand.conv.weight), m.expand.bn)

    z_forward = logits(forward)
    z_backward = logits(backward) if bidirectional else None
    if fusion == 'add':
        g = z_forward if not bidirectional else (z_forward + z_backward) / 2
        return x + g
    attention = torch.sigmoid(z_forward) - 0.5
    if bidirectional:
        attention = (attention + torch.sigmoid(z_backward) - 0.5) / 2
    return x + x * attention


# --- S-TDM ------------------------------------------------------------------


def basic_block_reference(x, state, prefix, stride, long_term=None):
    """A ResNet-18 BasicBlock (eval-mode BN), ``long_term`` applied after
    ``conv1`` (TDN's long-term unit)."""
    out = relu(
        bn_state(
            F.conv2d(x, state[f'{prefix}.conv1.conv.weight'], stride=stride,
                     padding=1), state, f'{prefix}.conv1.bn'))
    if long_term is not None:
        out = long_term(out)
    out = bn_state(
        F.conv2d(out, state[f'{prefix}.conv2.conv.weight'], padding=1),
        state, f'{prefix}.conv2.bn')
    identity = x
    if f'{prefix}.downsample.conv.weight' in state:
        identity = bn_state(
            F.conv2d(x, state[f'{prefix}.downsample.conv.weight'],
                     stride=stride), state, f'{prefix}.downsample.bn')
    return relu(out + identity)


def stem_reference(x, state, prefix):
    """``MaxPool3x3/2(ReLU(BN(Conv7x7/2(x))))``."""
    out = relu(
        bn_state(
            F.conv2d(x, state[f'{prefix}.conv.weight'], stride=2, padding=3),
            state, f'{prefix}.bn'))
    return F.max_pool2d(out, kernel_size=3, stride=2, padding=1)


def stdm_reference(x, state, frames_per_segment, input_mode='difference',
                   num_fused_stages=2, blocks_per_stage=2, prefix='stdm'):
    """Eq. (3): the motion features ``H`` of every fused stage.

    ``x`` is ``(N*T, 3 L, H, W)``; ``D = [I_2 - I_1, ..., I_L - I_{L-1}]``
    (or the frames) at half resolution, then the motion stem and the
    copies of ``layer1, ...`` (ResNet-18 blocks here).
    """
    frames = [x[:, 3 * i:3 * i + 3] for i in range(frames_per_segment)]
    if input_mode == 'difference':
        d = torch.cat([b - a for a, b in zip(frames[:-1], frames[1:])], 1)
    else:
        d = torch.cat(frames, 1)
    prefix = f'{prefix}.' if prefix else ''
    motion = stem_reference(avg_pool_2x2(d), state, f'{prefix}stem')
    outs = [motion]
    for stage in range(num_fused_stages - 1):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            motion = basic_block_reference(
                motion, state, f'{prefix}layer{stage + 1}.{block}', stride)
        outs.append(motion)
    return outs


def fuse_reference(rgb, motion, fusion='weighted_add', weights=(0.5, 0.5)):
    """Eq. (1) (``'add'``), the release's weighted sum and Table 1(b)."""
    up = upsample(motion, rgb.shape[-2:])
    channel = torch.sigmoid(motion.mean((2, 3), keepdim=True))
    if fusion == 'weighted_add':
        return weights[0] * rgb + weights[1] * up
    if fusion == 'add':
        return rgb + up
    if fusion == 'mul':
        return rgb * torch.sigmoid(up)
    if fusion == 'mul_add':
        return rgb + rgb * torch.sigmoid(up)
    if fusion == 'channel_mul':
        return rgb * channel
    assert fusion == 'channel_mul_add', fusion
    return rgb + rgb * channel


# --- the backbone ---------------------------------------------------------


def resnet_tdn_reference(model, x, num_segments: int,
                         frames_per_segment: int,
                         stdm: Optional[Dict],
                         ltdm: Optional[Dict],
                         long_term_stages: Sequence[int],
                         temporal: Sequence[str]):
    """TDN-ResNet-18 (Sec. 3.4) in eval mode on ``(N*T, 3 L, H, W)``.

    Args:
        model: the backbone, read for its parameters only.
        stdm (dict, optional): ``input_mode``, ``fusion``, ``weights``,
            ``stages`` (paper stages fused, consecutive from 1).
        ltdm (dict, optional): :func:`ltdm_reference` options.
        long_term_stages: paper stages (2-5) with long-term units.
        temporal: the temporal modules in order: ``'tconv'``, ``'tsm'``,
            ``'mem'``.
    """
    state = model.state_dict()
    centre = frames_per_segment // 2
    out = stem_reference(x[:, 3 * centre:3 * centre + 3], state, 'conv1')
    motions = []
    if stdm is not None:
        motions = stdm_reference(x, state, frames_per_segment,
                                 stdm['input_mode'], len(stdm['stages']))
        out = fuse_reference(out, motions[0], stdm['fusion'],
                             stdm.get('weights'))
    for stage in range(4):
        layer = getattr(model, f'layer{stage + 1}')
        for index in range(2):
            block = layer[index]

            def long_term(y, block=block):
                if ltdm is not None:
                    y = ltdm_reference(block.ltdm, y, num_segments, **ltdm)
                units = list(block.temporal) if isinstance(
                    block.temporal, torch.nn.Sequential) else [block.temporal]
                for kind, unit in zip(temporal, units):
                    if kind == 'tconv':
                        y = temporal_conv_reference(y, unit.conv.weight,
                                                    num_segments)
                    elif kind == 'tsm':
                        y = shift_reference(y, num_segments)
                    else:
                        assert kind == 'mem', kind
                        y = mem_reference(unit, y, num_segments)
                return y

            stride = 2 if stage > 0 and index == 0 else 1
            with_unit = stage + 2 in long_term_stages
            out = basic_block_reference(
                out, state, f'layer{stage + 1}.{index}', stride,
                long_term if with_unit else None)
        if stage + 1 < len(motions):
            out = fuse_reference(out, motions[stage + 1], stdm['fusion'],
                                 stdm.get('weights'))
    return out
