# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""ONNX export through onnxruntime: every backbone variant and the whole
recognizers (tools/deployment/export_onnx.py)."""
import copy
import importlib.util
import os.path as osp
import warnings

import mmaction_tdx  # noqa: F401  # isort: skip
import onnxruntime as ort
import pytest
import torch
from deploy_helpers import REPO, build_quickstart, frames, load_tool
from mmaction.registry import MODELS
from mmengine.registry import init_default_scope

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
    'tsm': dict(type='ResNetTSM', depth=18, num_segments=T, pretrained=None),
}


def _onnx_parity(model, example, inputs, path):
    """Max abs difference / output scale of onnxruntime vs PyTorch on
    ``inputs``; exported on ``example`` with a dynamic first axis."""
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        torch.onnx.export(
            model, (example, ), str(path), input_names=['x'],
            output_names=['y'], dynamic_axes={'x': {0: 'n'}, 'y': {0: 'n'}},
            opset_version=17, dynamo=False)
        want = model(inputs)
    session = ort.InferenceSession(
        str(path), providers=['CPUExecutionProvider'])
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
    return model.eval()


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


@pytest.mark.parametrize('name', ['tdn', 'tdrl'])
def test_export_tool_on_quickstart_configs(name, tmp_path, capsys):
    """The acceptance command, on a random-init checkpoint saved here."""
    tool = load_tool()
    model = build_quickstart(name)
    _randomise_bn(model)
    checkpoint = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), checkpoint)
    out = str(tmp_path / 'model.onnx')
    code = tool.main([tool_config(name), checkpoint, out])
    printed = capsys.readouterr().out
    assert code == 0, printed
    ratio = float(printed.split('ratio ')[1].split()[0])
    assert ratio <= 1e-4
    # The ONNX file holds the checkpoint's weights: it scores like the
    # PyTorch model built from them, for a batch other than the traced one.
    shape = tool.input_shape(model.cfg.test_pipeline)
    inputs = frames(shape, batch=3)
    diff, scale = tool.compare_with_onnxruntime(
        tool.ExportableRecognizer(model.eval()), out, inputs)
    assert diff <= 1e-4 * scale


def tool_config(name):
    from deploy_helpers import QUICKSTART
    return QUICKSTART[name]


def test_export_check_catches_a_wrong_graph(tmp_path):
    """The tool's check is not vacuous: a model that differs from the
    exported one fails it."""
    tool = load_tool()
    model = build_quickstart('tsm').eval()
    wrapper = tool.ExportableRecognizer(model)
    shape = tool.input_shape(model.cfg.test_pipeline)
    out = str(tmp_path / 'm.onnx')
    tool.export(wrapper, shape, out)
    inputs = frames(shape)
    diff, scale = tool.compare_with_onnxruntime(wrapper, out, inputs)
    assert diff <= 1e-4 * scale
    with torch.no_grad():
        model.cls_head.fc_cls.weight.mul_(3)
    diff, scale = tool.compare_with_onnxruntime(wrapper, out, inputs)
    assert diff > 1e-4 * scale


def test_input_shape_from_pipelines():
    tool = load_tool()
    assert tool.input_shape([
        dict(type='SampleFrames', clip_len=5, num_clips=8),
        dict(type='Resize', scale=(-1, 256)),
        dict(type='ThreeCrop', crop_size=224)
    ]) == (120, 3, 224, 224)
    assert tool.input_shape([
        dict(type='SampleFrames', clip_len=1, num_clips=8,
             twice_sample=True),
        dict(type='CenterCrop', crop_size=(160, 128))
    ]) == (16, 3, 128, 160)
    with pytest.raises(ValueError, match='--shape'):
        tool.input_shape([dict(type='SampleFrames', clip_len=1),
                          dict(type='Resize', scale=(-1, 256))])


def test_onnx_demo_on_a_real_video(shared_dir, tmp_path, capsys):
    tool, demo = load_tool(), load_tool('onnx_demo')
    model = build_quickstart('tdrl').eval()
    out = str(tmp_path / 'm.onnx')
    wrapper = tool.ExportableRecognizer(model)
    tool.export(wrapper, tool.input_shape(model.cfg.test_pipeline), out)
    video = osp.join(shared_dir, 'data', 'videos', 'test.mp4')
    labels = tmp_path / 'labels.txt'
    labels.write_text(''.join(f'action {i}\n' for i in range(10)))
    assert demo.main([tool_config('tdrl'), out, video, '--label-map',
                      str(labels), '--top-k', '5']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[1].startswith('1. action ')
    # The printed best class is PyTorch's best class for that video.
    from mmaction_tdx.apis import video_inputs
    with torch.no_grad():
        score = model.test_step(video_inputs(model, video))[0].pred_score
    assert lines[1].split(': ')[0] == f'1. action {int(score.argmax())}'
