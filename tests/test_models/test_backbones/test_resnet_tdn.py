# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""ResNetTDN: every Table 1 variant against an independent statement of
its equations (``tdn_reference``, written on raw tensors and the model's
parameters), deploy reparameterisation, export/trace/compile/autocast, the
TD-feature channel and the input contract."""
import copy
import importlib.util
import io
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmaction.registry import MODELS
from mmengine.analysis import FlopAnalyzer
from mmengine.registry import init_default_scope

import mmaction_tdx  # noqa: F401
from mmaction_tdx.models.common import (
    ChannelwiseTemporalConv,
    LongTermTDM,
    MotionEnhancementModule,
    ShortTermTDM,
    TemporalShift,
)


def _load_reference():
    """``tests/test_models/test_common/tdn_reference.py``, by path."""
    path = osp.join(
        osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_common',
        'tdn_reference.py')
    spec = importlib.util.spec_from_file_location('tdn_reference', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()


@pytest.fixture(autouse=True)
def _single_thread():
    """The CI machine is small and shared; one thread avoids contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


T, S = 4, 64

RELEASE_SPEC = dict(
    num_segments=T,
    frames_per_segment=5,
    # T = 4: the release's S-TDM weights (0.75, 0.25) (0.5/0.5 only at 8).
    stdm=dict(input_mode='difference', fusion='weighted_add',
              weights=(0.75, 0.25), stages=(1, 2)),
    ltdm=dict(),
    long_term_stages=(3, 4, 5),
    temporal=('tconv', ))
NO_STDM = dict(stdm=None, frames_per_segment=1)
OTHER_MODULES = dict(NO_STDM, ltdm=None, long_term_stages=(2, 3, 4, 5))


def _stdm_spec(**changes):
    return dict(stdm=dict(RELEASE_SPEC['stdm'], **changes))


# One entry per ablation of Table 1 (options of the modules, not copies):
# the config and, decoded by hand, the reference's explicit options.
TABLE1_VARIANTS = {
    'release': (dict(), dict()),
    'a_stdm_stacked_frames':
    (dict(short_term_tdm=dict(type='ShortTermTDM', input_mode='frames')),
     _stdm_spec(input_mode='frames')),
    'a_ltdm_average':
    (dict(long_term_tdm=dict(type='LongTermTDM', temporal_operator='average')),
     dict(ltdm=dict(temporal_operator='average'))),
    **{
        f'b_stdm_{fusion}':
        (dict(short_term_tdm=dict(type='ShortTermTDM', fusion=fusion)),
         _stdm_spec(fusion=fusion, weights=None))
        for fusion in ('add', 'mul', 'mul_add', 'channel_mul',
                       'channel_mul_add')
    },
    'c_ltdm_add': (dict(long_term_tdm=dict(type='LongTermTDM', fusion='add')),
                   dict(ltdm=dict(fusion='add'))),
    'c_ltdm_channel':
    (dict(long_term_tdm=dict(
        type='LongTermTDM', fusion='channel_attention', multi_scale=False)),
     dict(ltdm=dict(fusion='channel_attention', multi_scale=False))),
    'c_ltdm_single_scale':
    (dict(long_term_tdm=dict(type='LongTermTDM', multi_scale=False)),
     dict(ltdm=dict(multi_scale=False))),
    'c_ltdm_forward_only':
    (dict(long_term_tdm=dict(type='LongTermTDM', bidirectional=False)),
     dict(ltdm=dict(bidirectional=False))),
    'c_ltdm_paper_bilinear':
    (dict(long_term_tdm=dict(type='LongTermTDM', upsample_mode='bilinear')),
     dict(ltdm=dict(upsample_mode='bilinear'))),
    'd_stdm_stage1':
    (dict(short_term_stages=(1, ), long_term_stages=(2, 3, 4, 5)),
     dict(_stdm_spec(stages=(1, )), long_term_stages=(2, 3, 4, 5))),
    'd_stdm_stages123':
    (dict(short_term_stages=(1, 2, 3), long_term_stages=(4, 5)),
     dict(_stdm_spec(stages=(1, 2, 3)), long_term_stages=(4, 5))),
    'e_stdm_only': (dict(long_term_tdm=None), dict(ltdm=None)),
    'e_ltdm_only': (dict(short_term_tdm=None), NO_STDM),
    'e_ltdm_only_centre_of_5':
    (dict(short_term_tdm=None, frames_per_segment=5), dict(stdm=None)),
    'e_baseline_temporal_conv':
    (dict(short_term_tdm=None, long_term_tdm=None), dict(NO_STDM, ltdm=None)),
    'f_tsm': (dict(
        short_term_tdm=None,
        long_term_tdm=None,
        temporal_module=dict(type='TemporalShift'),
        long_term_stages=(2, 3, 4, 5)), dict(OTHER_MODULES, temporal=('tsm',
                                                                     ))),
    'f_teinet': (dict(
        short_term_tdm=None,
        long_term_tdm=None,
        temporal_module=[
            dict(type='MotionEnhancementModule'),
            dict(type='ChannelwiseTemporalConv')
        ],
        long_term_stages=(2, 3, 4, 5)), dict(
            OTHER_MODULES, temporal=('mem', 'tconv'))),
    'f_tconv_5x_frames':
    (dict(short_term_tdm=None, long_term_tdm=None, num_segments=5 * T),
     dict(NO_STDM, ltdm=None, num_segments=5 * T)),
    'release_dec2020_quirk':
    (dict(long_term_tdm=dict(
        type='LongTermTDM', backward_full_scale_from_forward=True)),
     dict(ltdm=dict(backward_full_scale_from_forward=True))),
}


def _backbone(depth=18, **options):
    cfg = dict(type='ResNetTDN', depth=depth, num_segments=T)
    cfg.update(copy.deepcopy(options))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _clips(model, n=1, seed=0, dtype=torch.float32):
    """``(N*T, L*3, S, S)``: every segment's frames stacked on channels."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n * model.num_segments, 3 * model.frames_per_segment,
                       S, S, generator=gen, dtype=dtype)


def _reverse_segments(x, model):
    return x.view(-1, model.num_segments, *x.shape[1:]).flip(1).reshape(
        x.shape)


def _randomised(model):
    """Non-trivial BN statistics and temporal kernels (float64, eval)."""
    model = ref.randomise_bn(model.double())
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ChannelwiseTemporalConv):
                w = m.conv.weight
                w.add_(0.3 * torch.randn(w.shape, generator=gen,
                                         dtype=w.dtype))
    return model.eval()


def test_default_is_the_release_design():
    model = MODELS.build(dict(type='ResNetTDN', depth=50, num_segments=8))
    assert model.frames_per_segment == 5
    assert isinstance(model.stdm, ShortTermTDM)
    assert model.stdm.num_fused_stages == 2
    assert model.stdm.fusion_weights == (0.5, 0.5)
    assert model.stdm.layer1[0].conv3.conv.out_channels == 256
    for stage, layer in enumerate(
        [model.layer1, model.layer2, model.layer3, model.layer4], start=2):
        for block in layer:
            if stage == 2:
                assert block.ltdm is None and block.temporal is None
            else:
                assert isinstance(block.ltdm, LongTermTDM)
                assert block.ltdm.in_channels == block.conv1.conv.out_channels
                assert isinstance(block.temporal, ChannelwiseTemporalConv)
                assert block.temporal.conv.bias is None
                assert block.temporal.conv.weight.requires_grad
    model16 = MODELS.build(dict(type='ResNetTDN', depth=50, num_segments=16))
    assert model16.stdm.fusion_weights == (0.75, 0.25)


def test_temporal_conv_is_a_shift_after_init_weights():
    model = _backbone()
    conv = model.layer2[0].temporal
    x = torch.randn(2 * T, conv.in_channels, 3, 3)
    torch.testing.assert_close(
        conv(x),
        TemporalShift(conv.in_channels, T)(x))


def test_default_r50_shapes():
    model = _backbone(depth=50).eval()
    with torch.no_grad():
        out = model(_clips(model, n=2))
    assert out.shape == (2 * T, 2048, S // 32, S // 32)


@pytest.mark.parametrize('name', sorted(TABLE1_VARIANTS))
def test_table1_variant_computes_its_own_formula(name):
    """Each variant equals the reference with that variant's options (and
    so differs from the others); its deployed form is the same function.
    """
    config, changes = TABLE1_VARIANTS[name]
    model = _randomised(_backbone(**config))
    spec = dict(RELEASE_SPEC, **changes)
    x = _clips(model, n=2, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        expected = ref.resnet_tdn_reference(model, x, **spec)
        assert out.shape == (2 * model.num_segments, 512, S // 32, S // 32)
        torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-9)
        model.switch_to_deploy()
        assert not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm)
            for m in model.modules())
        torch.testing.assert_close(model(x), out, rtol=1e-6, atol=1e-6)


def test_table1_variant_structure():
    tei = _backbone(**TABLE1_VARIANTS['f_teinet'][0])
    assert isinstance(tei.layer1[0].temporal[0], MotionEnhancementModule)
    assert isinstance(tei.layer1[0].temporal[1], ChannelwiseTemporalConv)
    stage1 = _backbone(**TABLE1_VARIANTS['d_stdm_stage1'][0])
    assert stage1.stdm.res_layers == [] and stage1.layer1[0].ltdm
    stages123 = _backbone(**TABLE1_VARIANTS['d_stdm_stages123'][0])
    assert stages123.stdm.res_layers == ['layer1', 'layer2']
    assert stages123.layer2[0].ltdm is None
    only = _backbone(**TABLE1_VARIANTS['e_ltdm_only'][0])
    assert only.frames_per_segment == 1


def test_gradients_reach_every_parameter():
    model = _backbone().train()
    model(_clips(model, n=2)).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize('train', [False, True])
def test_forward_hooks_see_unchanged_tensors(train):
    """No module writes into a tensor another module returned (Grad-CAM
    and feature visualisation keep references to them).

    Not checked: the BN inside an MMCV ``ConvModule`` whose ``ReLU`` is
    in place by MMAction2's ResNet default (upstream's own choice; the
    ``ConvModule``'s output, which our units receive, is checked).
    """
    model = _backbone().train(train)
    captured = []

    def keep(module, args, output):
        for value in (output if isinstance(output, (tuple, list)) else
                      [output]):
            captured.append((value, value.detach().clone()))

    for module in model.modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_hook(keep)
    x = _clips(model, n=2)
    before = x.clone()
    with torch.set_grad_enabled(train):
        model(x)
    assert torch.equal(x, before)
    assert len(captured) > 100
    for tensor, copy_ in captured:
        assert torch.equal(tensor, copy_)


def test_static_video_feeds_zeros_to_the_short_term_branch():
    model = _backbone().eval()
    seen = []
    model.stdm.stem.register_forward_pre_hook(
        lambda module, args: seen.append(args[0]))
    torch.manual_seed(0)
    one_frame = torch.randn(T, 3, S, S)
    static = one_frame.repeat(1, 5, 1, 1)
    with torch.no_grad():
        model(static)
    assert seen[0].shape == (T, 12, S // 2, S // 2)
    assert seen[0].abs().max() == 0


def test_rgb_path_sees_the_centre_frame():
    model = _backbone(short_term_tdm=None, frames_per_segment=5).eval()
    x = _clips(model)
    changed = x.clone()
    changed[:, :6] += 1.0  # frames 1-2
    changed[:, 9:] -= 1.0  # frames 4-5
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(changed))
        changed[:, 6:9] += 1.0  # the centre frame
        assert not torch.allclose(model(x), model(changed))


def test_reversing_segment_order_changes_the_output():
    model = _backbone().eval()
    x = _clips(model)
    with torch.no_grad():
        out = model(x)
        out_of_reversed = model(_reverse_segments(x, model))
    reversed_out = out.view(-1, T, *out.shape[1:]).flip(1).reshape(out.shape)
    assert (out_of_reversed - reversed_out).abs().max() > 1e-3


def test_input_contract_errors_name_the_fix():
    model = _backbone().eval()
    # The old layout (frames on the batch axis).
    with pytest.raises(ValueError) as err:
        model(torch.randn(T * 5, 3, S, S))
    message = str(err.value)
    assert '(N*T, 15, H, W)' in message
    assert 'x.view(-1, 15, *x.shape[-2:])' in message
    with pytest.raises(ValueError, match=r'\(N\*T, 15, H, W\)'):
        model(torch.randn(1, T, 15, S, S))
    with pytest.raises(ValueError) as err:
        model(torch.randn(T + 1, 15, S, S))
    message = str(err.value)
    for part in (f'num_segments={T}', str(T + 1), 'not a whole number',
                 f'SampleFrames(clip_len=5, frame_interval=1, num_clips={T})'):
        assert part in message
    # L = 1: the ordinary ResNet input.
    tsn_like = _backbone(short_term_tdm=None).eval()
    with torch.no_grad():
        assert tsn_like(torch.randn(T, 3, S, S)).shape == (T, 512, 2, 2)
    with pytest.raises(ValueError, match=r'\(N\*T, 3, H, W\)'):
        tsn_like(torch.randn(T, 15, S, S))


def test_sampling_of_is_the_rule_init_follows():
    """``sampling_of`` (read by the datasets' sampling check without
    building the model) gives the ``(T, L)`` the built backbone reads."""
    cls = MODELS.get('ResNetTDN')
    assert cls.sampling_of() == (8, 5)
    assert cls.sampling_of(num_segments=T, short_term_tdm=None,
                           depth=50) == (T, 1)
    stdm7 = dict(type='ShortTermTDM', frames_per_segment=7)
    assert cls.sampling_of(short_term_tdm=stdm7) == (8, 7)
    model = _backbone(frames_per_segment=3)
    assert (model.num_segments, model.frames_per_segment) == \
        cls.sampling_of(num_segments=T, frames_per_segment=3) == (T, 3)
    assert model.stdm.frames_per_segment == 3  # the S-TDM gets it too
    with pytest.raises(ValueError, match='set one value'):
        cls.sampling_of(short_term_tdm=stdm7, frames_per_segment=5)
    with pytest.raises(ValueError, match='odd'):
        cls.sampling_of(short_term_tdm=None, frames_per_segment=4)
    with pytest.raises(ValueError, match='num_segments'):
        cls.sampling_of(num_segments=0)
    assert MODELS.get('ResNetTDRL').sampling_of(16, depth=50) == (16, 1)


# --- TD loss on TDN (td_blocks) ------------------------------------------

TD_BLOCKS = ((), (0, ), (-1, ), (0, 1))


@pytest.mark.parametrize('depth,with_cp', [(18, False), (50, True)])
def test_td_features_are_the_long_term_unit_outputs(depth, with_cp):
    model = _backbone(depth=depth, td_blocks=TD_BLOCKS, with_cp=with_cp)
    assert model.supported_aux_outputs == ('td_features', )
    model.request_aux_outputs(('td_features', ))
    chosen = [model.layer2[0], model.layer3[-1], model.layer4[0],
              model.layer4[1]]
    seen = []
    for block in chosen:
        block.temporal.register_forward_hook(
            lambda module, args, output: seen.append(output))
    x = _clips(model, n=2).requires_grad_(with_cp)
    model.train()
    feats, aux = model.forward_with_aux(x)
    assert feats.shape == (2 * T, model.feat_dim, 2, 2)
    assert list(aux) == ['td_features']
    assert len(aux['td_features']) == 4
    for z, hooked in zip(aux['td_features'], seen[:4]):
        assert z is hooked
    sum(z.square().mean() for z in aux['td_features']).backward()
    assert model.layer2[0].ltdm.squeeze.conv.weight.grad is not None
    # Eval mode (and inference, export): the plain features, nothing kept.
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, _feats_without_td(model, x))


def _feats_without_td(model, x):
    plain = copy.deepcopy(model)
    plain.request_aux_outputs(())
    with torch.no_grad():
        return plain.eval()(x)


def test_td_loss_reaches_the_head_through_the_recognizer():
    init_default_scope('mmaction')
    model = MODELS.build(
        dict(
            type='SegmentRecognizer2D',
            backbone=dict(
                type='ResNetTDN', depth=18, num_segments=T,
                td_blocks=((), (), (), (-1, ))),
            cls_head=dict(
                type='TSNTDHead',
                num_classes=3,
                in_channels=512,
                loss_td=dict(type='TemporalDiversityLoss', num_segments=T)),
            data_preprocessor=dict(
                type='ActionDataPreprocessor', format_shape='NCHW')))
    from mmaction.structures import ActionDataSample
    samples = [ActionDataSample().set_gt_label(i) for i in range(2)]
    inputs = torch.randn(2, T * 5, 3, S, S)
    losses = model(inputs, samples, mode='loss')
    assert {'loss_cls', 'loss_td'} <= set(losses)
    assert losses['loss_td'] > 0


def test_td_blocks_errors():
    with pytest.raises(ValueError, match='one entry'):
        _backbone(td_blocks=((), (-1, )))
    with pytest.raises(ValueError, match=r'td_blocks\[1\].*\[-2, 1\]'):
        _backbone(td_blocks=((), (2, ), (), ()))
    with pytest.raises(ValueError, match='no long-term unit'):
        _backbone(td_blocks=((0, ), (), (), ()))
    with pytest.raises(ValueError, match='no long-term unit'):
        _backbone(short_term_tdm=None, long_term_tdm=None,
                  temporal_module=None, td_blocks=((), (0, ), (), ()))
    with pytest.raises(ValueError, match='td_blocks'):
        _backbone().request_aux_outputs(('td_features', ))
    with pytest.raises(ValueError, match='cannot provide'):
        _backbone().request_aux_outputs(('flow', ))


# --- export, tracing, compilation, mixed precision -------------------------


def test_jit_trace_gives_the_same_output():
    model = _randomised(_backbone()).float()
    x, other = _clips(model, n=1), _clips(model, n=2, seed=1)
    with torch.no_grad():
        traced = torch.jit.trace(model, (x, ))  # checks a second run
        torch.testing.assert_close(traced(other), model(other))


@pytest.mark.parametrize('variant', [
    'release', 'e_stdm_only', 'e_ltdm_only', 'e_baseline_temporal_conv'
])
def test_onnx_export_matches_onnxruntime(variant):
    onnx = pytest.importorskip('onnx')
    ort = pytest.importorskip('onnxruntime')
    model = _randomised(_backbone(**TABLE1_VARIANTS[variant][0])).float()
    x, other = _clips(model, n=1), _clips(model, n=2, seed=1)
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            model, (x, ),
            buffer,
            opset_version=17,
            dynamo=False,
            input_names=['frames'],
            output_names=['features'],
            dynamic_axes={'frames': {
                0: 'segments'
            }})
        expected = model(other)
    onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))
    session = ort.InferenceSession(
        buffer.getvalue(), providers=['CPUExecutionProvider'])
    got = torch.from_numpy(session.run(None, {'frames': other.numpy()})[0])
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-4 * scale


def _gradients(model, x, autocast):
    model.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out = model(x)
    loss = out.float().square().mean()
    loss.backward()
    return loss.detach(), {
        name: param.grad.detach().clone()
        for name, param in model.named_parameters()
    }


def test_bf16_autocast_training_step_is_close_to_fp32():
    model = _backbone().train()
    x = _clips(model)
    loss32, grads32 = _gradients(copy.deepcopy(model), x, False)
    loss16, grads16 = _gradients(model, x, True)
    assert all(torch.isfinite(g).all() for g in grads16.values())
    assert abs(loss16 / loss32 - 1) < 0.05
    flat32 = torch.cat([g.flatten() for g in grads32.values()])
    flat16 = torch.cat([g.flatten() for g in grads16.values()])
    # bf16 keeps ~3 digits: a plain ResNet-18 reaches about the same.
    assert torch.cosine_similarity(flat16, flat32, 0) > 0.85
    largest = max(g.norm() for g in grads32.values())
    for name, g32 in grads32.items():
        if g32.norm() > 0.01 * largest:
            cos = torch.cosine_similarity(grads16[name].flatten(),
                                          g32.flatten(), 0)
            assert cos > 0.75, name


@pytest.mark.slow
def test_torch_compile_forward_and_training_step():
    """Graph capture (no graph break) and autograd of the whole model;
    ``aot_eager`` skips inductor's C++ code generation, which
    :func:`test_torch_compile_inductor_on_the_tdn_units` covers."""
    model = _backbone()
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    x = _clips(model)
    out = compiled(x)
    torch.testing.assert_close(out, eager.train()(x), rtol=1e-4, atol=1e-4)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    compiled.eval(), eager.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-4,
                                   atol=1e-4)


@pytest.mark.slow
def test_torch_compile_inductor_on_the_tdn_units():
    torch.manual_seed(0)
    units = nn.Sequential(
        LongTermTDM(64, T), ChannelwiseTemporalConv(64, T, init='random'))
    eager = copy.deepcopy(units)
    compiled = torch.compile(units)
    x = torch.randn(2 * T, 64, 8, 8)
    out = compiled(x)
    torch.testing.assert_close(out, eager(x), rtol=1e-4, atol=1e-4)
    out.square().mean().backward()
    eager(x).square().mean().backward()
    for (name, p), q in zip(units.named_parameters(), eager.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-5,
                                   msg=name)


def _recognizer(**backbone):
    init_default_scope('mmaction')
    return MODELS.build(
        dict(
            type='SegmentRecognizer2D',
            backbone=dict(type='ResNetTDN', depth=18, num_segments=T,
                          **backbone),
            cls_head=dict(
                type='TSNHead',
                num_classes=7,
                in_channels=512,
                dropout_ratio=0.5,
                average_clips='prob'),
            data_preprocessor=dict(
                type='ActionDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                format_shape='NCHW'))).eval()


def test_recognizer_averages_over_segments():
    model = _recognizer()
    torch.manual_seed(0)
    inputs = torch.randn(2, T * 5, 3, S, S)
    with torch.no_grad():
        scores, kwargs = model.extract_feat(
            inputs, stage='head', test_mode=True)
        feats = model.backbone(inputs.view(-1, 15, S, S))
    assert kwargs['num_segs'] == T
    pooled = feats.mean((2, 3)).view(2, T, -1).mean(1)
    torch.testing.assert_close(scores, model.cls_head.fc_cls(pooled))


def test_recognizer_rejects_partial_clips():
    model = _recognizer()
    with pytest.raises(ValueError, match='multiple of 5'):
        model.extract_feat(torch.randn(1, T * 5 + 1, 3, S, S))
    with pytest.raises(ValueError, match='whole number of clips'):
        model.extract_feat(torch.randn(1, T * 5 + 5, 3, S, S))


class _TorchvisionBasicBlock(nn.Module):
    """torchvision's ResNet-18 block layout (independent of our code)."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                nn.BatchNorm2d(planes))


def _torchvision_resnet18_state():
    net = nn.Module()
    net.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    net.bn1 = nn.BatchNorm2d(64)
    inplanes = 64
    for i, planes in enumerate((64, 128, 256, 512)):
        stride = 1 if i == 0 else 2
        setattr(
            net, f'layer{i + 1}',
            nn.Sequential(
                _TorchvisionBasicBlock(inplanes, planes, stride),
                _TorchvisionBasicBlock(planes, planes, 1)))
        inplanes = planes
    net.fc = nn.Linear(512, 1000)
    state = net.state_dict()
    torch.manual_seed(3)
    for value in state.values():
        if value.is_floating_point():
            value.uniform_(0.1, 1.0)
    return state


def test_imagenet_init_from_torchvision_layout(tmp_path):
    state = _torchvision_resnet18_state()
    path = tmp_path / 'resnet18_tv.pth'
    torch.save(state, path)
    model = _backbone(pretrained=str(path))
    own = model.state_dict()
    torch.testing.assert_close(own['conv1.conv.weight'], state['conv1.weight'])
    torch.testing.assert_close(own['conv1.bn.running_var'],
                               state['bn1.running_var'])
    torch.testing.assert_close(own['layer3.0.conv2.bn.weight'],
                               state['layer3.0.bn2.weight'])
    torch.testing.assert_close(own['layer4.0.downsample.conv.weight'],
                               state['layer4.0.downsample.0.weight'])
    torch.testing.assert_close(own['layer4.0.downsample.bn.bias'],
                               state['layer4.0.downsample.1.bias'])
    # The S-TDM's layer1 is a copy of ImageNet's layer1.
    torch.testing.assert_close(own['stdm.layer1.1.conv1.conv.weight'],
                               state['layer1.1.conv1.weight'])
    torch.testing.assert_close(own['stdm.layer1.0.conv2.bn.running_mean'],
                               state['layer1.0.bn2.running_mean'])
    # Its first conv: conv1's mean over RGB, repeated for 12 channels.
    rgb_mean = state['conv1.weight'].mean(1, keepdim=True)
    torch.testing.assert_close(own['stdm.stem.conv.weight'],
                               rgb_mean.expand(64, 12, 7, 7))
    # Every non-fc torchvision tensor went somewhere.
    body = [k for k in state if not k.startswith('fc.')]
    assert len(model.imagenet_state_dict(state)) == len(body) + len(
        [k for k in body if k.startswith('layer1.')]) + 1


def test_imagenet_init_rejects_wrong_weights(tmp_path):
    state = _torchvision_resnet18_state()
    del state['layer2.1.bn1.running_mean']
    state['layer3.0.conv1.weight'] = torch.zeros(1)
    path = tmp_path / 'broken.pth'
    torch.save(state, path)
    with pytest.raises(KeyError) as err:
        _backbone(pretrained=str(path))
    assert 'layer2.1.bn1.running_mean' in str(err.value)
    assert 'layer3.0.conv1.weight' in str(err.value)


def _flops_and_params(depth, num_segments):
    init_default_scope('mmaction')
    model = MODELS.build(
        dict(
            type='SegmentRecognizer2D',
            backbone=dict(
                type='ResNetTDN', depth=depth, num_segments=num_segments),
            cls_head=dict(
                type='TSNHead', num_classes=174, in_channels=2048),
            data_preprocessor=dict(
                type='ActionDataPreprocessor', format_shape='NCHW'))).eval()
    model.forward = model.extract_feat  # as tools/analysis_tools/get_flops
    inputs = torch.randn(1, 5 * num_segments, 3, 224, 224)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        flops = analyzer.total()
    params = sum(p.numel() for p in model.backbone.parameters())
    return flops, params


def test_flops_and_params_r50_8_segments():
    torch.set_num_threads(1)
    flops, params = _flops_and_params(50, 8)
    assert abs(flops / 35.9e9 - 1) < 0.01
    # 24.06 M is the release's backbone (its conv biases included, no
    # classifier); ours has no conv biases (folded into BN).
    assert abs(params / 24.06e6 - 1) < 0.01


@pytest.mark.slow
@pytest.mark.parametrize('depth,num_segments,gflops', [(50, 16, 71.8),
                                                       (101, 8, 66.2),
                                                       (101, 16, 132.4)])
def test_flops_paper_table2(depth, num_segments, gflops):
    torch.set_num_threads(1)
    flops, _ = _flops_and_params(depth, num_segments)
    assert abs(flops / (gflops * 1e9) - 1) < 0.01
