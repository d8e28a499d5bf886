# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Inference on a real video: MMAction2's ``init_recognizer`` /
``inference_recognizer`` with our configs, and ``demo/demo.py``.

The models are randomly initialised Kinetics-400 TDN and TDRL (ResNet-18,
4 segments, to stay fast), saved as checkpoints first so the real loading
path runs. The checks are of the plumbing: five distinct valid labels,
scores that are probabilities, the same output on every run.
"""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine import Config

from mmaction_tdx.apis import (
    default_video_pipeline,
    init_video_recognizer,
    load_label_map,
    prepare_inference_config,
    top_k,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'demo', 'demo.py')
MODELS = osp.join(ROOT, 'configs', '_base_', 'models')
TDN_QUICKSTART = osp.join(
    ROOT, 'configs', 'quickstart',
    'tdn_r18_1xb16-5x1x4-12e_synthetic-motion-rgb.py')
SMALL = {
    'model.backbone.depth': 18,
    'model.backbone.num_segments': 4,
    'model.cls_head.in_channels': 512,
}


def _sampler(pipeline):
    return next(s for s in pipeline if s['type'] == 'SampleFrames')


@pytest.fixture(scope='module')
def kinetics(shared_dir):
    return dict(
        video=osp.join(shared_dir, 'data', 'videos',
                       'kinetics_arm_wrestling.mp4'),
        labels=osp.join(shared_dir, 'data', 'label_maps', 'kinetics400.txt'))


@pytest.fixture(scope='module', params=['tdn', 'tdrl'])
def checkpoint(request, tmp_path_factory):
    """A randomly initialised Kinetics-400 model saved as MMEngine would."""
    torch.manual_seed(0)
    config = osp.join(MODELS, f'{request.param}_r50.py')
    model = init_video_recognizer(config, None, 'cpu', SMALL)
    model.init_weights()
    path = tmp_path_factory.mktemp('ckpt') / f'{request.param}.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return config, str(path)


def _cfg_options():
    return [f'{k}={v}' for k, v in SMALL.items()]


def _demo_main(argv):
    spec = importlib.util.spec_from_file_location('demo', DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo.main([str(a) for a in argv])


def _parse_top5(stdout, labels):
    lines = stdout.strip().splitlines()
    start = lines.index('The top-5 labels with corresponding scores are:')
    pairs = [line.rsplit(': ', 1) for line in lines[start + 1:start + 6]]
    assert len(pairs) == 5
    names = [name for name, _ in pairs]
    scores = [float(score) for _, score in pairs]
    assert len(set(names)) == 5 and set(names) <= set(labels)
    assert all(0 <= s <= 1 for s in scores) and sum(scores) <= 1 + 1e-5
    assert scores == sorted(scores, reverse=True)
    return pairs


def test_demo_prints_top5_for_the_real_video(checkpoint, kinetics, capsys):
    """Twice, with the same five labels: in-process, then (TDN) as the
    command users type. Runs differ in their random state, so equal
    outputs also show that the checkpoint, not a fresh init, was used."""
    config, ckpt = checkpoint
    argv = [config, ckpt, kinetics['video'], kinetics['labels'],
            '--device', 'cpu', '--cfg-options', *_cfg_options()]
    labels = load_label_map(kinetics['labels'])
    torch.manual_seed(1)
    assert _demo_main(argv) == 0
    first = _parse_top5(capsys.readouterr().out, labels)
    if 'tdn' in osp.basename(ckpt):
        result = subprocess.run([sys.executable, DEMO, *argv],
                                capture_output=True, text=True, cwd=ROOT,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        second = _parse_top5(result.stdout, labels)
    else:
        torch.manual_seed(2)
        assert _demo_main(argv) == 0
        second = _parse_top5(capsys.readouterr().out, labels)
    assert second == first


def test_demo_reports_bad_inputs(kinetics, tmp_path, capsys):
    config = osp.join(MODELS, 'tdrl_r50.py')
    short_map = tmp_path / 'ten.txt'
    short_map.write_text('\n'.join(f'c{i}' for i in range(10)))
    base = ['--device', 'cpu', '--cfg-options', *_cfg_options()]
    assert _demo_main([config, 'none', kinetics['video'], short_map,
                       *base]) == 1
    assert '400 classes' in capsys.readouterr().err
    assert _demo_main([config, tmp_path / 'missing.pth', kinetics['video'],
                       kinetics['labels'], *base]) == 1
    assert 'does not exist' in capsys.readouterr().err


def test_tdn_config_gets_its_5_frame_test_pipeline():
    """The test loader's pipeline wins over an inherited 1-frame
    ``test_pipeline``; MMAction2's inference_recognizer reads the latter."""
    cfg = Config.fromfile(TDN_QUICKSTART)
    cfg.test_pipeline = default_video_pipeline(4, 1)  # a stale base pipeline
    prepared = prepare_inference_config(cfg)
    assert _sampler(prepared.test_pipeline)['clip_len'] == 5
    assert _sampler(prepared.test_pipeline)['num_clips'] == 4
    # the quick-start config itself is right for stock MMAction2 too
    assert _sampler(Config.fromfile(TDN_QUICKSTART).test_pipeline)[
        'clip_len'] == 5


@pytest.mark.parametrize('name,clip_len', [('tdn', 5), ('tdrl', 1)])
def test_model_only_config_gets_the_backbone_sampling(name, clip_len):
    cfg = Config.fromfile(osp.join(MODELS, f'{name}_r50.py'))
    cfg.model.backbone.num_segments = 16
    sampler = _sampler(prepare_inference_config(cfg).test_pipeline)
    assert (sampler['clip_len'], sampler['num_clips']) == (clip_len, 16)
    assert sampler['test_mode'] is True


def test_sampling_follows_the_short_term_tdm():
    cfg = Config.fromfile(osp.join(MODELS, 'tdn_r50.py'))
    cfg.model.backbone.short_term_tdm = dict(type='ShortTermTDM',
                                             frames_per_segment=7)
    assert _sampler(prepare_inference_config(cfg).test_pipeline)[
        'clip_len'] == 7
    cfg.model.backbone.short_term_tdm = None
    assert _sampler(prepare_inference_config(cfg).test_pipeline)[
        'clip_len'] == 1


def test_wrong_sampling_is_refused():
    cfg = Config.fromfile(osp.join(MODELS, 'tdn_r50.py'))
    cfg.test_pipeline = default_video_pipeline(8, 1)
    with pytest.raises(ValueError, match='clip_len=5'):
        prepare_inference_config(cfg)


def test_top_k_and_label_map(tmp_path):
    scores = torch.tensor([0.1, 0.5, 0.05, 0.3, 0.05])
    best = top_k(scores, list('abcde'), k=2)
    assert [label for label, _ in best] == ['b', 'd']
    assert best[1][1] == pytest.approx(0.3)
    with pytest.raises(ValueError, match='label map'):
        top_k(scores, list('abc'))
    path = tmp_path / 'labels.txt'
    path.write_text('x\ny\n\n')
    assert load_label_map(str(path)) == ['x', 'y']


def test_stock_mmaction2_api_with_the_tdn_quickstart_config(shared_dir):
    """MMAction2's own init_recognizer / inference_recognizer, no helper of
    ours in between: the config's ``test_pipeline`` samples 5 frames per
    segment, and the scores are a distribution over its 10 classes."""
    from mmaction.apis import inference_recognizer, init_recognizer
    model = init_recognizer(TDN_QUICKSTART, None, device='cpu')
    video = osp.join(shared_dir, 'data', 'videos', 'test.mp4')
    result = inference_recognizer(model, video)
    assert result.pred_score.shape == (10, )
    assert float(result.pred_score.sum()) == pytest.approx(1, abs=1e-4)
