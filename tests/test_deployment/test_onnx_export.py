# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""ONNX export through onnxruntime: every backbone variant and the whole
recognizers (tools/deployment/export_onnx.py).

The recognizers are exported once per family (TDN one view, TDN three
views, TDRL, TSM) by the tool's ``main`` in a module fixture, and every
test of the tool reads those exports.
"""
import contextlib
import copy
import glob
import importlib.util
import io
import os.path as osp
import warnings

import mmaction_tdx  # noqa: F401  # isort: skip
import onnx
import onnxruntime as ort
import pytest
import torch
from deploy_helpers import (
    QUICKSTART,
    REPO,
    build_quickstart,
    frames,
    load_tool,
)
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmengine.registry import init_default_scope

from mmaction_tdx.datasets.sampling_contract import bind_view_heads

T = 4
# 64 px: the L-TDM's half-resolution branch needs 2x2 maps in layer4.
SIZE = {'ResNetTDN': 64}


def _table1_variants():
    """TDN's Table 1 ablations, as listed by its backbone tests."""
    path = osp.join(REPO, 'tests', 'test_models', 'test_backbones',
                    'test_resnet_tdn.py')
    spec = importlib.util.spec_from_file_location('_tdn_variants', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Each entry is (backbone options, reference-equation options).
    return {
        name: options
        for name, (options, _) in module.TABLE1_VARIANTS.items()
    }


TDN_VARIANTS = _table1_variants()
TDRL_VARIANTS = {
    'tdrl_default': {},
    'tdrl_pem_after_tm': dict(enhancement_position='after_tm'),
    'tdrl_td_before_tm': dict(td_position='before_tm'),
    'tdrl_a_no_td_blocks': dict(td_blocks=((), (), (), ())),
    'tdrl_without_pem': dict(enhancement_module=None),
    'tdrl_mem': dict(enhancement_module=dict(type='MotionEnhancementModule')),
    'tdrl_tsm': dict(enhancement_module=None,
                     temporal_module=dict(type='TemporalShift')),
}
BASELINES = {
    'tsn': dict(type='ResNet', depth=18, pretrained=None),
    # pretrained2d=False: upstream's switch for a TSM from scratch (its
    # init_weights fails on pretrained=None otherwise; mmaction_tdx.compat)
    'tsm': dict(type='ResNetTSM', depth=18, num_segments=T, pretrained=None,
                pretrained2d=False),
}


def _onnx_parity(model, example, inputs, path):
    """Max abs difference / output scale of onnxruntime vs PyTorch on
    ``inputs``; exported on ``example`` with a dynamic first axis.

    The smallest graph that holds a variant's code: the backbone alone
    (depth 18, T=4, 32 or 64 px), the only part the variants change.
    """
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        torch.onnx.export(
            model, (example, ), str(path), input_names=['x'],
            output_names=['y'], dynamic_axes={'x': {0: 'n'}, 'y': {0: 'n'}},
            opset_version=17, dynamo=False, do_constant_folding=False)
        want = model(inputs)
    # What is checked is the exported function, not onnxruntime's graph
    # rewrites (the tool's export, with both, is checked below): without
    # them the session starts in about half the time.
    options = ort.SessionOptions()
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    session = ort.InferenceSession(
        str(path), options, providers=['CPUExecutionProvider'])
    got = torch.from_numpy(session.run(None, {'x': inputs.numpy()})[0])
    assert got.shape == want.shape
    return ((got - want).abs().max() / want.abs().max()).item()


def _randomise_bn(model, seed=0):
    """Running statistics and affine BN parameters away from (0, 1), so
    that BN folding errors would show."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.2, generator=gen)
                module.running_var.uniform_(0.5, 1.5, generator=gen)
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.normal_(0, 0.2, generator=gen)


def _build(cfg):
    init_default_scope('mmaction')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    _randomise_bn(model)
    # Not `return model.eval()`: MMAction2's ResNet.train returns None
    # (README, compat table), and the baselines are upstream's.
    model.eval()
    return model


def _segment_input(model, videos, seed=0):
    per_segment = getattr(model, 'frames_per_segment', 1)
    segments = getattr(model, 'num_segments', T)
    gen = torch.Generator().manual_seed(seed)
    size = SIZE.get(type(model).__name__, 32)
    return torch.randn(videos * segments, 3 * per_segment, size, size,
                       generator=gen)


@pytest.mark.parametrize('variant', sorted(TDN_VARIANTS))
def test_tdn_variants_export(variant, tmp_path):
    cfg = dict(type='ResNetTDN', depth=18, num_segments=T)
    cfg.update(TDN_VARIANTS[variant])
    model = _build(cfg)
    ratio = _onnx_parity(model, _segment_input(model, 1),
                         _segment_input(model, 2, seed=1),
                         tmp_path / 'm.onnx')
    assert ratio < 1e-5, ratio


def test_tdn_deploy_model_exports(tmp_path):
    model = _build(dict(type='ResNetTDN', depth=18, num_segments=T))
    model.switch_to_deploy()
    ratio = _onnx_parity(model, _segment_input(model, 1),
                         _segment_input(model, 2, seed=1),
                         tmp_path / 'm.onnx')
    assert ratio < 1e-5, ratio


@pytest.mark.parametrize('variant', sorted(TDRL_VARIANTS))
def test_tdrl_variants_export(variant, tmp_path):
    model = _build(dict(type='ResNetTDRL', depth=18, num_segments=T,
                        pretrained=None, **TDRL_VARIANTS[variant]))
    ratio = _onnx_parity(model, _segment_input(model, 1),
                         _segment_input(model, 2, seed=1),
                         tmp_path / 'm.onnx')
    assert ratio < 1e-5, ratio


@pytest.mark.parametrize('name', sorted(BASELINES))
def test_baselines_export(name, tmp_path):
    model = _build(BASELINES[name])
    ratio = _onnx_parity(model, _segment_input(model, 1),
                         _segment_input(model, 2, seed=1),
                         tmp_path / 'm.onnx')
    assert ratio < 1e-5, ratio


def test_export_wrapper_is_the_test_step(shared_dir):
    """The exported function is ``model.test_step``'s ``pred_score`` on
    the config's pipeline output (normalisation and view averaging
    included), for a real video."""
    tool = load_tool()
    model = build_quickstart('tdrl').eval()
    from mmaction_tdx.apis import video_inputs
    data = video_inputs(model, osp.join(shared_dir, 'data', 'videos',
                                        'kinetics_arm_wrestling.mp4'))
    with torch.no_grad():
        want = model.test_step(data)[0].pred_score
        got = tool.ExportableRecognizer(model)(
            data['inputs'][0][None].float())
    assert got.shape == (1, 10)
    assert torch.allclose(got[0], want, atol=1e-6)
    assert tuple(data['inputs'][0].shape) == tool.input_shape(
        model.cfg.test_pipeline)


# A user's multi-view test of the quick-start TDN, written as for the
# shipped SSv1 configs: rawframe decoding (the tool decodes a video through
# the same steps), SegmentSampleFrames with 3 views, a per-view head whose
# segments_per_view comes from the backbone.
VIEWS = 3
TDN_VIEWS_CONFIG = """
_base_ = [{base!r}]
model = dict(cls_head=dict(type='ViewConsensusTSNHead'))
test_pipeline = [
    dict(type='SegmentSampleFrames', clip_len=5, num_clips=4,
         num_views={views}, test_mode=True),
    dict(type='RawFrameDecode'),
    dict(type='Resize', scale=(-1, 56)),
    dict(type='CenterCrop', crop_size=48),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
"""
# family -> (quick-start model whose checkpoint it loads, frames per sample).
# The baselines through the tool: TSM (TSNHead on a segment backbone, the
# path TSN's takes too); TSN's backbone is exported by
# test_baselines_export.
FAMILIES = {
    'tdn': ('tdn', 4 * 5),
    'tdn_views': ('tdn', VIEWS * 4 * 5),
    'tdrl': ('tdrl', 4),
    'tsm': ('tsm', 4),
}


def _checkpoint(model, path):
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), str(path))
    return str(path)


@pytest.fixture(scope='module')
def exports(tmp_path_factory, shared_dir):
    """Each family exported once by the tool's ``main`` from a random-init
    checkpoint (BN statistics randomised) and checked on the frames of a
    real video: a function ``family -> dict(code, out, err, onnx, config,
    checkpoint, video, model)``, exporting a family on its first request
    (a test pays only for the families it reads).
    """
    tool = load_tool()
    root = tmp_path_factory.mktemp('exports')
    video = osp.join(shared_dir, 'data', 'videos', 'test.mp4')
    models, done = {}, {}

    def get(family):
        if family in done:
            return done[family]
        base, _ = FAMILIES[family]
        if base not in models:
            model = build_quickstart(base)
            _randomise_bn(model)
            models[base] = (model.eval(),
                            _checkpoint(model, root / f'{base}.pth'))
        model, checkpoint = models[base]
        config = QUICKSTART[base]
        if family == 'tdn_views':
            config = str(root / 'tdn_views.py')
            with open(config, 'w') as f:
                f.write(TDN_VIEWS_CONFIG.format(base=QUICKSTART['tdn'],
                                                views=VIEWS))
        out = str(root / f'{family}.onnx')
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            code = tool.main([config, checkpoint, out, '--video', video])
        done[family] = dict(
            code=code, out=stdout.getvalue(), err=stderr.getvalue(),
            onnx=out, config=config, checkpoint=checkpoint, video=video,
            model=load_tool().load_model(config, checkpoint))
        return done[family]

    return get


def _ratios(printed):
    """``{output: ratio}`` of the tool's parity lines."""
    ratios = {}
    for line in printed.splitlines():
        if 'ratio ' in line:
            name = line.strip().split(':')[0]
            ratios[name] = float(line.split('ratio ')[1].split()[0])
    return ratios


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_export_tool_on_each_family(family, exports):
    """The acceptance command on a random-init checkpoint: exit 0, both
    outputs (scores and pre-softmax logits) within 1e-4 of their scale on
    decoded real frames, the input shape of the config's test pipeline,
    and the checkpoint's weights in the graph."""
    tool = load_tool()
    run = exports(family)
    assert run['code'] == 0, run['out'] + run['err']
    assert 'WARNING' not in run['err'], run['err']
    assert f'frames of {run["video"]}' in run['out']
    ratios = _ratios(run['out'])
    assert set(ratios) == {'scores', 'logits'}
    assert all(ratio <= 1e-4 for ratio in ratios.values()), ratios
    model = run['model']
    shape = tool.input_shape(model.cfg.test_pipeline)
    assert shape[0] == FAMILIES[family][1]
    session = ort.InferenceSession(
        run['onnx'], providers=['CPUExecutionProvider'])
    assert session.get_inputs()[0].shape[1:] == list(shape)
    # The ONNX file holds the checkpoint's weights: it scores like the
    # PyTorch model built from them, for a batch other than the traced one.
    results = tool.compare_with_onnxruntime(
        tool.ExportableRecognizer(model), run['onnx'],
        frames(shape, batch=3))
    for name, diff, scale, _ in results:
        assert diff <= 1e-4 * scale, name


def test_multiview_export_is_the_test_step(exports, capsys):
    """Three views: the graph's scores are ``test_step``'s ``pred_score``
    (one row per video, views fused by the head), its logits the three
    per-view logits."""
    tool = load_tool()
    run = exports('tdn_views')
    model = run['model']
    video = tool.video_frames(model.cfg, run['video'])
    assert video.shape[0] == VIEWS * 4 * 5
    with torch.no_grad():
        want = model.test_step(dict(
            inputs=[video], data_samples=[ActionDataSample()]))[0].pred_score
    session = ort.InferenceSession(
        run['onnx'], providers=['CPUExecutionProvider'])
    scores, logits = session.run(None, {'inputs': video[None].numpy()})
    assert scores.shape == (1, 10) and logits.shape == (1, VIEWS, 10)
    assert torch.allclose(torch.from_numpy(scores[0]), want, atol=1e-5)
    # 'prob': the mean of the per-view softmax of the logits.
    assert torch.allclose(
        torch.from_numpy(logits[0]).softmax(-1).mean(0), want, atol=1e-5)
    # The ONNX demo reads the video through the rawframe config too.
    assert load_tool('onnx_demo').main(
        [run['config'], run['onnx'], run['video'], '--top-k', '1']) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith(
        f'1. class {int(want.argmax())}: ')


@pytest.mark.parametrize('average_clips', ['prob', 'score', 'relu_score'])
def test_export_wrapper_averages_views_as_the_head(average_clips):
    """The wrapper is ``test_step``'s ``pred_score`` for 3 views and a batch
    of 2, whatever the head's ``average_clips``; its logits are each view
    scored on its own."""
    tool = load_tool()
    model = build_quickstart(
        'tdn', type='ViewConsensusTSNHead',
        average_clips=average_clips).eval()
    bind_view_heads(model)
    _randomise_bn(model)
    inputs = frames((VIEWS * 4 * 5, 3, 48, 48), batch=2)
    wrapper = tool.ExportableRecognizer(model, with_logits=True)
    with torch.no_grad():
        want = model.test_step(dict(
            inputs=list(inputs),
            data_samples=[ActionDataSample() for _ in range(2)]))
        scores, logits = wrapper(inputs)
        per_view = [
            wrapper(view)[1][:, 0]
            for view in inputs.split(4 * 5, dim=1)
        ]
    assert scores.shape == (2, 10) and logits.shape == (2, VIEWS, 10)
    assert torch.allclose(
        scores, torch.stack([sample.pred_score for sample in want]),
        atol=1e-5)
    assert torch.allclose(logits, torch.stack(per_view, 1), atol=1e-5)


def _corrupt(source, target, name, change):
    """Copy the ONNX file ``source`` to ``target`` with the initializer
    ``name`` changed by ``change`` (numpy array -> numpy array)."""
    graph = onnx.load(source)
    for tensor in graph.graph.initializer:
        if tensor.name == name:
            value = onnx.numpy_helper.to_array(tensor)
            tensor.CopyFrom(onnx.numpy_helper.from_array(change(value), name))
            break
    else:
        raise KeyError(f'{name} is not an initializer of {source}')
    onnx.save(graph, target)


@pytest.mark.parametrize('change', ['bias_shift', 'weight_scale'])
def test_export_tool_fails_on_a_wrong_graph(change, exports, tmp_path,
                                            monkeypatch, capsys):
    """``main`` exits 1 with a FAILED line when the written graph does not
    compute the model. A shifted classifier bias leaves the softmax scores
    unchanged: only the logits comparison sees it."""
    tool = load_tool()
    run = exports('tsm')
    corrupt = {
        'bias_shift': ('model.cls_head.fc_cls.bias', lambda b: b + 5),
        'weight_scale': ('model.cls_head.fc_cls.weight', lambda w: w * 3),
    }[change]

    def wrong_export(wrapper, shape, out, opset=17):
        _corrupt(run['onnx'], out, *corrupt)

    monkeypatch.setattr(tool, 'export', wrong_export)
    code = tool.main([run['config'], run['checkpoint'],
                      str(tmp_path / 'wrong.onnx'), '--video', run['video']])
    printed = capsys.readouterr()
    assert code == 1, printed.out
    failed = [line for line in printed.err.splitlines()
              if line.startswith('FAILED')]
    assert len(failed) == 1 and 'logits' in failed[0], printed.err
    ratios = _ratios(printed.out)
    assert ratios['logits'] > 1e-4
    if change == 'bias_shift':
        assert ratios['scores'] <= 1e-4  # softmax is shift-invariant


def test_export_tool_refuses_another_models_checkpoint(
        exports, tmp_path, monkeypatch, capsys):
    """Strict loading: a TDN checkpoint in the TDRL config exits 1 naming
    the mismatch before exporting; ``--no-strict`` loads what fits."""
    tool = load_tool()
    tdn = exports('tdn')
    out = tmp_path / 'tdrl.onnx'
    code = tool.main([QUICKSTART['tdrl'], tdn['checkpoint'], str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith('FAILED: ') and 'does not fit' in err
    assert '--no-strict' in err and not out.exists()

    class Exported(Exception):
        pass

    def stop(*args, **kwargs):
        raise Exported

    monkeypatch.setattr(tool, 'export', stop)
    with pytest.warns(UserWarning, match='does not fit'), \
            pytest.raises(Exported):
        tool.main([QUICKSTART['tdrl'], tdn['checkpoint'], str(out),
                   '--no-strict'])


def test_check_inputs_are_decoded_frames_or_say_noise(exports, monkeypatch,
                                                      capsys):
    """The check scores the test pipeline's frames of the video (and their
    mirror); without a video, or for a --shape the pipeline does not give,
    it says that it falls back to noise."""
    tool = load_tool()
    run = exports('tsm')  # the fewest frames to decode
    cfg, shape = run['model'].cfg, (4, 3, 48, 48)
    inputs, source = tool.check_inputs(cfg, shape, run['video'])
    video = tool.video_frames(cfg, run['video'])
    assert torch.equal(inputs[0], video)
    assert torch.equal(inputs[1], video.flip(-1))
    assert 'WARNING' not in capsys.readouterr().err
    monkeypatch.setattr(tool, 'DEFAULT_VIDEO', '/nonexistent/test.mp4')
    _, source = tool.check_inputs(cfg, shape, None)
    assert source == 'uniform noise'
    assert 'no --video given' in capsys.readouterr().err
    _, source = tool.check_inputs(cfg, (8, 3, 48, 48), run['video'])
    assert source == 'uniform noise'
    assert 'not --shape (8, 3, 48, 48)' in capsys.readouterr().err


def test_video_pipeline_reads_a_video_for_a_rawframe_config():
    tool = load_tool()
    pipeline = [
        dict(type='SegmentSampleFrames', clip_len=5, num_clips=8),
        dict(type='RawFrameDecode'),
        dict(type='CenterCrop', crop_size=224)
    ]
    assert [step['type'] for step in tool.video_pipeline(pipeline)] == [
        'DecordInit', 'SegmentSampleFrames', 'DecordDecode', 'CenterCrop'
    ]
    assert pipeline[1] == dict(type='RawFrameDecode')  # not modified
    video = [dict(type='DecordInit'), dict(type='SampleFrames'),
             dict(type='DecordDecode')]
    assert tool.video_pipeline(video) == video


def test_input_shape_from_pipelines():
    """The tool reads the shape through the library's sampling contract:
    every sampler (SegmentSampleFrames with views included) and crop."""
    tool = load_tool()
    assert tool.input_shape([
        dict(type='SampleFrames', clip_len=5, num_clips=8),
        dict(type='Resize', scale=(-1, 256)),
        dict(type='ThreeCrop', crop_size=224)
    ]) == (120, 3, 224, 224)
    # twice_sample draws its second view in test mode only (MMAction2).
    assert tool.input_shape([
        dict(type='SampleFrames', clip_len=1, num_clips=8,
             twice_sample=True, test_mode=True),
        dict(type='CenterCrop', crop_size=(160, 128))
    ]) == (16, 3, 128, 160)
    assert tool.input_shape([
        dict(type='SegmentSampleFrames', clip_len=5, num_clips=8,
             num_views=2, test_mode=True),
        dict(type='RawFrameDecode'),
        dict(type='Resize', scale=(-1, 256)),
        dict(type='TenCrop', crop_size=224)
    ]) == (800, 3, 224, 224)
    with pytest.raises(ValueError, match='--shape'):
        tool.input_shape([dict(type='SampleFrames', clip_len=1),
                          dict(type='Resize', scale=(-1, 256))])


@pytest.mark.parametrize('config', sorted(
    osp.relpath(path, REPO)
    for path in glob.glob(osp.join(REPO, 'configs', 't*', '*.py'))))
def test_input_shape_of_every_shipped_config(config):
    """Every shipped TDN/TDRL release config (its ablations only vary the
    model) has a test pipeline the tool reads (the failure of issue 21:
    SegmentSampleFrames was unknown), and its frames are whole views of
    the backbone's T x L."""
    from mmaction_tdx.apis import load_config
    from mmaction_tdx.datasets.sampling_contract import backbone_sampling
    tool = load_tool()
    cfg = load_config(osp.join(REPO, config))
    frames_, _, height, width = tool.input_shape(cfg.test_pipeline)
    per_view = backbone_sampling(cfg.model).frames  # None: TSN's ResNet
    assert frames_ % (per_view or 1) == 0
    assert height == width and height in (224, 256)


def test_onnx_demo_on_a_real_video(exports, tmp_path, capsys):
    demo = load_tool('onnx_demo')
    run = exports('tdrl')
    labels = tmp_path / 'labels.txt'
    labels.write_text(''.join(f'action {i}\n' for i in range(10)))
    assert demo.main([run['config'], run['onnx'], run['video'],
                      '--label-map', str(labels), '--top-k', '5']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[1].startswith('1. action ')
    # The printed best class is PyTorch's best class for that video.
    from mmaction_tdx.apis import video_inputs
    with torch.no_grad():
        score = run['model'].test_step(
            video_inputs(run['model'], run['video']))[0].pred_score
    assert lines[1].split(': ')[0] == f'1. action {int(score.argmax())}'
