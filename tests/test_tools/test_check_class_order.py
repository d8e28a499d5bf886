# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""tools/convert/check_class_order.py picks the order a checkpoint really
uses.

The test checkpoint's order is known by construction: real mp4 clips of six
classes (one colour each), a small ResNetTDN, and a nearest-class-mean
classifier on its pooled features (class ``k``: ``w_k = mu_k``,
``b_k = -|mu_k|^2 / 2``). Its rows are then stored permuted by a known
``q`` (checkpoint class ``j`` is the dataset's class ``q[j]``), so the only
order that fits is ``q^-1``.
"""
import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'convert', 'check_class_order.py')
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (220, 220, 40),
           (200, 40, 200), (40, 200, 200)]  # BGR, one per class
Q = [2, 0, 4, 5, 1, 3]  # checkpoint class j is the dataset's class Q[j]

CONFIG = """
default_scope = 'mmaction'
custom_imports = dict(imports=['mmaction_tdx'], allow_failed_imports=False)
_base_ = [r'{root}/configs/_base_/models/tdn_r50.py']
model = dict(
    backbone=dict(depth=18, pretrained=None, num_segments=2),
    cls_head=dict(num_classes=6, in_channels=512, dropout_ratio=0.0))
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='SegmentSampleFrames', clip_len=5, num_clips=2,
         test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
val_dataloader = dict(
    batch_size=1,
    dataset=dict(
        type='VideoDataset', ann_file='', data_prefix=dict(video=''),
        pipeline=val_pipeline, test_mode=True))
"""


def _tool():
    spec = importlib.util.spec_from_file_location('check_class_order', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _write_clip(path, colour, rng):
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*'mp4v'), 10, (64, 64))
    assert writer.isOpened()
    base = np.array(colour, np.float32) * rng.uniform(0.85, 1.0)
    for _ in range(16):
        frame = base + rng.normal(0, 8, (64, 64, 3))
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()


def _write_list(folder, name, per_class, rng):
    lines = []
    for label, colour in enumerate(COLOURS):
        for i in range(per_class):
            clip = f'{name}_{label}_{i}.mp4'
            _write_clip(folder / clip, colour, rng)
            lines.append(f'{clip} {label}')
    path = folder / f'{name}.txt'
    path.write_text('\n'.join(lines) + '\n')
    return path


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from mmaction.apis import init_recognizer
    from mmengine import Config

    tool = _tool()
    folder = tmp_path_factory.mktemp('class_order')
    rng = np.random.default_rng(0)
    fit_list = _write_list(folder, 'fit', 2, rng)
    check_list = _write_list(folder, 'check', 3, rng)
    config = folder / 'tiny_tdn.py'
    config.write_text(CONFIG.format(root=ROOT))

    cfg = Config.fromfile(str(config))
    torch.manual_seed(0)
    model = init_recognizer(cfg, None, device='cpu')
    pooled = []
    hook = model.cls_head.register_forward_pre_hook(
        lambda module, args: pooled.append(args[0].mean(dim=(2, 3)).mean(0)))
    dataset = tool.build_dataset(cfg, str(fit_list), str(folder), 'val')
    _, labels = tool.score_videos(model, dataset, None)
    hook.remove()
    feats = torch.stack(pooled)
    means = torch.stack(
        [feats[torch.tensor(labels) == k].mean(0) for k in range(6)])
    weight = means
    bias = -0.5 * (means**2).sum(1)
    with torch.no_grad():
        model.cls_head.fc_cls.weight.copy_(weight[Q])
        model.cls_head.fc_cls.bias.copy_(bias[Q])
    checkpoint = folder / 'permuted.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)

    right = [Q.index(i) for i in range(6)]  # q^-1
    maps = {}
    for name, perm in (('right', right), ('wrong', Q)):
        maps[name] = folder / f'{name}.txt'
        maps[name].write_text('\n'.join(map(str, perm)) + '\n')
    return tool, config, checkpoint, check_list, folder, maps


def test_tool_picks_the_order_that_fits(setup, capsys):
    tool, config, checkpoint, check_list, folder, maps = setup
    code = tool.main([
        str(config), str(checkpoint), str(check_list), '--data-prefix',
        str(folder), '--candidate', f'wrong={maps["wrong"]}',
        '--candidate', f'right={maps["right"]}'
    ])
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: int(line.split()[1])
        for line in out.splitlines()
        if line.split() and line.split()[0] in ('as-converted', 'wrong',
                                                 'right')
    }
    assert rows['right'] == 18, out  # 6 classes x 3 clips, all right
    assert rows['as-converted'] <= 6 and rows['wrong'] <= 6, out
    assert "'right' fits" in out
    assert code == 0


def test_builtin_candidates():
    from mmaction_tdx.models.utils.tdn_class_orders import (
        KINETICS400_FROM_THIRD_PARTY_MAP,
        STHV1_FROM_RELEASE,
    )
    tool = _tool()
    k400 = tool.builtin_candidates(400)
    assert k400['as-converted'][0] == list(range(400))
    assert k400['third-party-map'][0] == list(
        KINETICS400_FROM_THIRD_PARTY_MAP)
    undo = k400['undo-third-party-map'][0]
    assert [undo[p] for p in KINETICS400_FROM_THIRD_PARTY_MAP] == list(
        range(400))
    sth = tool.builtin_candidates(174)
    assert sth['sthv1-remap'][0] == list(STHV1_FROM_RELEASE)
    assert set(tool.builtin_candidates(51)) == {'as-converted'}


def test_count_hits_reads_scores_through_the_map():
    tool = _tool()
    # Checkpoint class 2 scores highest, class 0 second.
    scores = [torch.tensor([0.3, 0.1, 0.6])]
    assert tool.count_hits(scores, [0], [0, 1, 2]) == (0, 1)
    assert tool.count_hits(scores, [0], [2, 0, 1]) == (1, 1)


def test_judge_warns_when_no_order_is_clearly_better():
    tool = _tool()
    fit, message = tool.judge({'a': 15, 'b': 0, 'c': 1}, 20)
    assert fit == 'a' and 'fits' in message
    fit, message = tool.judge({'a': 6, 'b': 4}, 20)
    assert fit is None and 'no order is clearly better' in message
    fit, _ = tool.judge({'a': 2, 'b': 0}, 5)  # lead below 3 videos
    assert fit is None


@pytest.mark.parametrize('lines,problem', [
    ('0\n1\n2\n3\n4\n9\n', 'entry 5 is 9, outside 0..5'),  # distinct
    ('0\n1\n2\n3\n4\n4\n', 'index 4 is listed twice'),
    ('0\n1\n2\n3\n4\n', 'it has 5 entries for 6 classes'),
    ('0\n1\n2\n3\n4\n-5\n', 'entry 5 is -5, outside'),
    ('0\n1\n2\n3\n4\n5.0\n', "invalid literal for int() with base 10: "
     "'5.0"),
])
def test_bad_candidate_maps_are_refused(setup, capsys, lines, problem):
    tool, config, checkpoint, check_list, folder, maps = setup
    path = folder / 'bad.txt'
    path.write_text(lines)
    code = tool.main([
        str(config), str(checkpoint), str(check_list), '--data-prefix',
        str(folder), '--candidate', f'bad={path}'
    ])
    err = capsys.readouterr().err
    assert code == 1
    assert f'error: --candidate bad={path}: ' in err and problem in err, err
