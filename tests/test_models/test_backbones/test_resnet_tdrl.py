# Copyright (c) mmaction_tdx contributors. All rights reserved.
# mmaction_tdx first: its compat fixes make `mmaction.models` importable.
import mmaction_tdx  # noqa: F401  # isort: skip
import pytest
import torch
from mmaction.models.backbones.resnet import ResNet
from mmaction.registry import MODELS

from mmaction_tdx.models.backbones.resnet_tdrl import TDRLBlock
from mmaction_tdx.models.common import (
    ChannelwiseTemporalConv,
    MotionEnhancementModule,
    ProgressiveEnhancementModule,
    TemporalShift,
)

T = 4


def _backbone(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='ResNetTDRL', depth=18, num_segments=T)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _frames(videos=2, size=32):
    return torch.randn(videos * T, 3, size, size)


def test_default_structure():
    model = _backbone(depth=50)
    blocks = [b for name in model.res_layers for b in getattr(model, name)]
    assert len(blocks) == 16
    for block in blocks:
        assert isinstance(block, TDRLBlock)
        assert isinstance(block.enhancement, ProgressiveEnhancementModule)
        assert isinstance(block.temporal, ChannelwiseTemporalConv)
        assert block.temporal.in_channels == block.conv1.in_channels
        assert block.enhancement.num_segments == T
    td = [(name, i) for name in model.res_layers
          for i, b in enumerate(getattr(model, name)) if b.with_td_loss]
    assert td == [('layer2', 3), ('layer3', 5), ('layer4', 2)]


def test_state_dict_keeps_resnet_keys():
    """ResNet checkpoints (e.g. ImageNet) load without renaming."""
    ours = set(_backbone().state_dict())
    plain = set(ResNet(18).state_dict())
    assert plain <= ours
    extra = ours - plain
    assert extra and all('.enhancement.' in k or '.temporal.' in k
                         for k in extra)


def test_td_features_only_through_forward_with_aux_when_requested():
    model = _backbone()
    x = _frames()
    model.train()
    assert torch.is_tensor(model(x))
    assert model.forward_with_aux(x)[1] == {}  # nothing requested
    model.request_aux_outputs(('td_features', ))
    assert torch.is_tensor(model(x))  # forward stays plain in training
    feats, aux = model.forward_with_aux(x)
    assert feats.shape == (2 * T, 512, 1, 1)
    assert [z.shape for z in aux['td_features']] == [(2 * T, 128, 4, 4),
                                                   (2 * T, 256, 2, 2),
                                                   (2 * T, 512, 1, 1)]
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert torch.is_tensor(out) and out.shape == feats.shape


def test_backward_reaches_pem_and_tm():
    model = _backbone()
    model.request_aux_outputs(('td_features', ))
    model.train()
    feats, aux = model.forward_with_aux(_frames())
    (feats.mean() + sum(z.mean() for z in aux['td_features'])).backward()
    for name, param in model.named_parameters():
        if '.enhancement.' in name or '.temporal.' in name:
            assert param.grad is not None, name
            assert param.grad.abs().sum() > 0, name


def _capture(block, module_name):
    captured = {}
    module = getattr(block, module_name)
    handle = module.register_forward_hook(
        lambda m, i, o: captured.update(input=i[0], output=o))
    return captured, handle


@pytest.mark.parametrize('enhancement_position,td_position,expected', [
    ('before_tm', 'after_tm', lambda b, x: b.temporal(b.enhancement(x))),
    ('before_tm', 'before_tm', lambda b, x: b.enhancement(x)),
    ('after_tm', 'after_tm', lambda b, x: b.temporal(x)),
    ('after_tm', 'before_tm', lambda b, x: x),
])
def test_positions(enhancement_position, td_position, expected):
    """TD features are taken where asked, whether or not the block fuses
    PEM into the TM (it does for PEM before TM with TD after TM)."""
    model = _backbone(
        enhancement_position=enhancement_position, td_position=td_position)
    block = model.layer2[-1]
    captured = {}
    handle = block.register_forward_pre_hook(
        lambda m, args: captured.update(input=args[0]))
    model.request_aux_outputs(('td_features', ))
    model.train()
    _, aux = model.forward_with_aux(_frames())
    handle.remove()
    with torch.no_grad():
        want = expected(block, captured['input'])
    assert torch.allclose(aux['td_features'][0], want, atol=1e-6)
    if enhancement_position == 'after_tm':
        # Unfused order: the TM's output is the enhancement's input.
        enh, h1 = _capture(block, 'enhancement')
        tm, h2 = _capture(block, 'temporal')
        model(_frames())
        h1.remove()
        h2.remove()
        assert tm['output'] is enh['input']


@pytest.mark.parametrize('kwargs,enhancement,temporal', [
    (dict(temporal_module=dict(type='TemporalShift'),
          enhancement_module=None), type(None), TemporalShift),
    (dict(enhancement_module=dict(type='MotionEnhancementModule')),
     MotionEnhancementModule, ChannelwiseTemporalConv),
    (dict(temporal_module=None), ProgressiveEnhancementModule, type(None)),
])
def test_ablation_variants(kwargs, enhancement, temporal):
    model = _backbone(**kwargs)
    assert isinstance(model.layer3[0].enhancement, enhancement)
    assert isinstance(model.layer3[0].temporal, temporal)
    model.request_aux_outputs(('td_features', ))
    feats, aux = model.forward_with_aux(_frames(videos=1))
    assert feats.shape == (T, 512, 1, 1) and len(aux['td_features']) == 3


def test_td_blocks_and_bad_settings():
    model = _backbone(td_blocks=((0, -2), (), (), (1, )))
    assert model.td_blocks == ((0, ), (), (), (1, ))
    model.request_aux_outputs(('td_features', ))
    _, aux = model.forward_with_aux(_frames(videos=1))
    assert [z.shape[1] for z in aux['td_features']] == [64, 512]
    with pytest.raises(ValueError, match='one entry'):
        _backbone(td_blocks=((), (-1, )))
    with pytest.raises(ValueError, match=r'layer2 of ResNet-18 has 2 blocks'):
        _backbone(td_blocks=((), (2, ), (), ()))
    with pytest.raises(ValueError, match='no TDRL-B block'):
        _backbone(td_blocks=((), (), (), ())).request_aux_outputs(
            ('td_features', ))
    with pytest.raises(ValueError, match='cannot provide'):
        _backbone().request_aux_outputs(('flow', ))
    with pytest.raises(ValueError, match='enhancement_position'):
        _backbone(enhancement_position='inside')
    with pytest.raises(ValueError, match='not a multiple of 4'):
        _backbone()(torch.randn(T + 2, 3, 32, 32))


def test_checkpointed_bottleneck_matches():
    model = _backbone(
        depth=50,
        with_cp=True,
        num_stages=2,
        out_indices=(1, ),
        strides=(1, 2),
        dilations=(1, 1),
        td_blocks=((), (-1, )))
    model.request_aux_outputs(('td_features', ))
    x = torch.randn(T, 3, 16, 16)
    feats, aux = model.forward_with_aux(x)
    feats.sum().backward()
    grad = model.layer1[0].temporal.conv.weight.grad.clone()
    model.zero_grad()
    for name in model.res_layers:
        for block in getattr(model, name):
            block.with_cp = False
    feats2, aux2 = model.forward_with_aux(x)
    feats2.sum().backward()
    assert torch.allclose(feats, feats2)
    assert torch.allclose(aux['td_features'][0], aux2['td_features'][0])
    assert torch.allclose(grad, model.layer1[0].temporal.conv.weight.grad)


def test_flops_r50_t8_match_the_paper():
    """Table 1: 33 GFLOPs for R50, 8 frames at 224x224 (within 3 %)."""
    from mmengine.analysis import FlopAnalyzer
    model = _backbone(depth=50, num_segments=8).eval()
    analyzer = FlopAnalyzer(model, (torch.randn(8, 3, 224, 224), ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    assert abs(analyzer.total() / 1e9 - 33) / 33 < 0.03


@pytest.mark.parametrize('temporal', ['TemporalShift',
                                      'ChannelwiseTemporalConv'])
def test_without_pem_equals_mmaction_tsm(temporal):
    """Table 3/4 baselines: TSM, and TIM at its shift init, are TSM."""
    tsm = MODELS.build(dict(type='ResNetTSM', depth=18, num_segments=T))
    ours = _backbone(
        temporal_module=dict(type=temporal), enhancement_module=None)
    state = {k.replace('.net.', '.'): v for k, v in tsm.state_dict().items()}
    missing, unexpected = ours.load_state_dict(state, strict=False)
    assert not unexpected
    assert all('.temporal.' in k for k in missing)
    tsm.eval()
    ours.eval()
    x = _frames(videos=1)
    with torch.no_grad():
        assert torch.allclose(ours(x), tsm(x), atol=1e-6)


def test_loads_torchvision_style_imagenet_checkpoint(tmp_path):
    """``pretrained='torchvision://resnet50'`` maps names as for ResNet."""
    from mmcv.cnn import ConvModule
    source = ResNet(18)
    state = {}
    for name, module in source.named_modules():
        if not isinstance(module, ConvModule):
            continue
        conv_name = name + '.0' if 'downsample' in name else name
        bn_name = name + '.1' if 'downsample' in name else name.replace(
            'conv', 'bn')
        state[conv_name + '.weight'] = module.conv.weight.detach() + 1
        for key, value in module.bn.state_dict().items():
            state[f'{bn_name}.{key}'] = value + 1
    torch.save(state, tmp_path / 'resnet18_tv.pth')
    model = _backbone(pretrained=str(tmp_path / 'resnet18_tv.pth'))
    model.init_weights()
    ours = model.state_dict()
    for key, value in source.state_dict().items():
        if not key.endswith('num_batches_tracked'):
            assert torch.equal(ours[key], value + 1), key
    # The temporal modules keep their own (shift) initialisation.
    assert torch.equal(
        model.layer1[0].temporal.conv.weight,
        ChannelwiseTemporalConv(64, T).conv.weight)


# Independent statements of the TDRL block (Fig. 2, Sec. 3.1) on raw
# tensors and parameters: PEM's Eq. 3-6 (the reference of the PEM tests),
# the channel-wise temporal conv and ResNet's BasicBlock, eval-mode BN.
def _load_pem_reference():
    import importlib.util
    import os.path as osp
    path = osp.join(osp.dirname(osp.dirname(__file__)), 'test_common',
                    'test_progressive_enhancement.py')
    spec = importlib.util.spec_from_file_location('_pem_equations', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pem_reference


pem_reference = _load_pem_reference()


def tim_reference(weight, x, t_count):
    """``out[t, c] = sum_j w[c, j] x[t + j - k // 2, c]``, zero padded."""
    k = weight.shape[-1]
    weight = weight.reshape(weight.shape[0], k)
    out = torch.zeros_like(x)
    for v in range(x.shape[0] // t_count):
        for t in range(t_count):
            for j in range(k):
                src = t + j - k // 2
                if 0 <= src < t_count:
                    out[v * t_count + t] += (weight[:, j, None, None] *
                                             x[v * t_count + src])
    return out


def _bn(x, params, prefix, eps=1e-5):
    mean, var = params[prefix + 'running_mean'], params[prefix + 'running_var']
    scale = params[prefix + 'weight'] / torch.sqrt(var + eps)
    return ((x - mean[:, None, None]) * scale[:, None, None] +
            params[prefix + 'bias'][:, None, None])


def basic_block_reference(params, x, u, stride):
    """ResNet BasicBlock ``relu(bn2(conv2(relu(bn1(conv1(u))))) + id(x))``
    with the temporal path's output ``u`` entering the residual branch."""
    import torch.nn.functional as F
    out = F.conv2d(u, params['conv1.conv.weight'], stride=stride, padding=1)
    out = torch.relu(_bn(out, params, 'conv1.bn.'))
    out = F.conv2d(out, params['conv2.conv.weight'], padding=1)
    out = _bn(out, params, 'conv2.bn.')
    identity = x
    if 'downsample.conv.weight' in params:
        identity = _bn(
            F.conv2d(x, params['downsample.conv.weight'], stride=stride),
            params, 'downsample.bn.')
    return torch.relu(out + identity)


def _random_tdrl(**kwargs):
    """A double-precision R18 TDRL with every parameter and BN statistic
    random, so that no unit is near identity."""
    kwargs.setdefault('temporal_module',
                      dict(type='ChannelwiseTemporalConv', init='random'))
    model = _backbone(**kwargs).double()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith('running_var'):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point():
                scale = 0.3 if '.conv' in name else 1.0
                tensor.copy_(scale * torch.randn(
                    tensor.shape, generator=gen, dtype=tensor.dtype))
    return model.eval()


def _sub_state(module, prefix):
    return {k[len(prefix):]: v for k, v in module.state_dict().items()
            if k.startswith(prefix)}


@pytest.mark.parametrize('enhancement_position,td_position', [
    ('before_tm', 'after_tm'), ('before_tm', 'before_tm'),
    ('after_tm', 'after_tm'), ('after_tm', 'before_tm')])
@pytest.mark.parametrize('layer,index', [('layer1', 1), ('layer2', 0)])
def test_block_matches_equations(enhancement_position, td_position, layer,
                                 index):
    """Each Table 6 order computes its own formula: ``U = PEM(X)``,
    ``Z = TIM(U)`` (or TIM first), the block's convolutions on the result
    and the TD features where ``td_position`` says."""
    model = _random_tdrl(enhancement_position=enhancement_position,
                         td_position=td_position)
    block = getattr(model, layer)[index]
    prefix = f'{layer}.{index}.'
    params = _sub_state(model, prefix)
    pem = _sub_state(block, 'enhancement.')
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2 * T, block.conv1.in_channels, 8, 8, generator=gen,
                    dtype=torch.float64)

    def pem_eq(v):
        return pem_reference(pem, v, T)

    def tim_eq(v):
        return tim_reference(params['temporal.conv.weight'], v, T)

    if enhancement_position == 'before_tm':
        u = pem_eq(x)
        z = tim_eq(u)
        branch_in, td = z, (z if td_position == 'after_tm' else u)
    else:
        z = tim_eq(x)
        branch_in, td = pem_eq(z), (z if td_position == 'after_tm' else x)
    want = basic_block_reference(params, x, branch_in,
                                 block.conv1.conv.stride)
    with torch.no_grad():
        out, td_features = block(x, return_td=True)
        assert torch.allclose(block(x), want, atol=1e-10)
    assert torch.allclose(out, want, atol=1e-10)
    assert torch.allclose(td_features, td, atol=1e-10)


def test_tsm_and_tim_variants_match_equations():
    """Table 3/4: TSM shift without PEM, and PEM + TIM on raw params."""
    model = _random_tdrl(enhancement_module=None,
                         temporal_module=dict(type='TemporalShift'))
    block = model.layer1[0]
    params = _sub_state(model, 'layer1.0.')
    x = torch.randn(T, 64, 6, 6, dtype=torch.float64)
    fold = 64 // 8
    shifted = torch.zeros_like(x)
    shifted[:-1, :fold] = x[1:, :fold]  # channels [0, C/8) from t + 1
    shifted[1:, fold:2 * fold] = x[:-1, fold:2 * fold]  # from t - 1
    shifted[:, 2 * fold:] = x[:, 2 * fold:]
    with torch.no_grad():
        assert torch.allclose(block(x),
                              basic_block_reference(params, x, shifted, 1),
                              atol=1e-10)


def test_forward_hooks_see_the_tensors_used():
    """PEM and TM are called as plain modules: a hook on the TM sees PEM's
    output as its input, and the TD features are the TM's output, neither
    changed afterwards."""
    model = _random_tdrl()
    block = model.layer2[-1]
    seen = {}
    hooks = [
        block.enhancement.register_forward_hook(
            lambda m, i, o: seen.update(pem_out=o, pem_out_copy=o.clone())),
        block.temporal.register_forward_hook(
            lambda m, i, o: seen.update(tm_in=i[0], tm_out=o,
                                        tm_out_copy=o.clone())),
    ]
    model.train()
    model.request_aux_outputs(('td_features', ))
    _, aux = model.forward_with_aux(_frames().double())
    for hook in hooks:
        hook.remove()
    assert seen['tm_in'] is seen['pem_out']
    assert aux['td_features'][0] is seen['tm_out']
    assert torch.equal(seen['pem_out'], seen['pem_out_copy'])
    assert torch.equal(seen['tm_out'], seen['tm_out_copy'])
