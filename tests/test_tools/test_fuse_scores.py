# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""tools/analysis/fuse_scores.py: ensembles from --dump files (the default
sum of probabilities and the TDN release's sum of ReLU'd logits), checks
and the command line."""
import importlib.util
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from mmengine import dump, load

TOOL = osp.join(REPO_ROOT, 'tools', 'analysis', 'fuse_scores.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('fuse_scores', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


_TOOL = _load_tool()
ScoreFileMismatch = _TOOL.ScoreFileMismatch
accuracies = _TOOL.accuracies
fuse_prediction_files = _TOOL.fuse_prediction_files
read_predictions = _TOOL.read_predictions


def write_predictions(path, scores, labels):
    """A file as tools/test.py --dump writes it."""
    dump([
        dict(pred_score=torch.tensor(s, dtype=torch.float32),
             gt_label=torch.tensor([label]))
        for s, label in zip(scores, labels)
    ], str(path))
    return str(path)


@pytest.fixture
def two_models(tmp_path):
    labels = [0, 1, 2, 3]
    # Model A is right on videos 0, 1; model B on 2, 3; each is unsure
    # where wrong, so their average is right on all four.
    a = [[.9, .1, 0, 0, 0, 0], [0, .9, .1, 0, 0, 0], [.3, .3, .2, 0, .1, .1],
         [.25, .25, 0, .2, .15, .15]]
    b = [[.4, .3, .3, 0, 0, 0], [.1, .4, .3, .2, 0, 0], [0, 0, 1, 0, 0, 0],
         [0, 0, 0, 1, 0, 0]]
    return (write_predictions(tmp_path / 'a.pkl', a, labels),
            write_predictions(tmp_path / 'b.pkl', b, labels), a, b, labels)


def test_fusion_averages_scores(two_models):
    path_a, path_b, a, b, labels = two_models
    fused, fused_labels, left_out = fuse_prediction_files([path_a, path_b])
    np.testing.assert_allclose(fused, np.add(a, b), rtol=1e-6)
    assert fused_labels == labels and left_out == {}
    assert accuracies(fused, labels)['top1'] == 1.0
    assert accuracies(*read_predictions(path_a))['top1'] == 0.5
    weighted, _, _ = fuse_prediction_files([path_a, path_b], [1, 0])
    np.testing.assert_allclose(weighted, a, rtol=1e-6)


def test_refuses_files_of_other_videos(two_models, tmp_path):
    path_a, _, a, _, labels = two_models
    shorter = write_predictions(tmp_path / 's.pkl', a[:3], labels[:3])
    with pytest.raises(ScoreFileMismatch, match='3'):
        fuse_prediction_files([path_a, shorter])
    shuffled = write_predictions(tmp_path / 'r.pkl', a, labels[::-1])
    with pytest.raises(ScoreFileMismatch, match='same videos'):
        fuse_prediction_files([path_a, shuffled])
    fewer_classes = write_predictions(tmp_path / 'c.pkl',
                                      [s[:5] for s in a], labels)
    with pytest.raises(ScoreFileMismatch, match='classes'):
        fuse_prediction_files([path_a, fewer_classes])
    with pytest.raises(ScoreFileMismatch, match='weights'):
        fuse_prediction_files([path_a, path_a], [1.0])
    with pytest.raises(ScoreFileMismatch, match='at least two'):
        fuse_prediction_files([path_a])


def test_command_line(two_models, tmp_path):
    path_a, path_b, *_ = two_models
    result = subprocess.run(
        [sys.executable, 'tools/analysis/fuse_scores.py', path_a, path_b],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'Top 1 Accuracy: 1.0000' in result.stdout
    assert 'Top 5 Accuracy: 1.0000' in result.stdout


def test_stand_ins_for_broken_videos_are_left_out(two_models, tmp_path,
                                                 capsys):
    path_a, path_b, a, b, labels = two_models
    # Video 1 was broken when model A was tested: its entry is the next
    # video's clip, scored by A and labelled as that video (label 2).
    mark = dict(index=1, path='videos/b.mp4', reason='cannot decode')
    samples = load(path_a)
    samples[1] = dict(samples[2], replaces_left_out_sample=mark)
    dump(samples, path_a)
    fused, fused_labels, left_out = fuse_prediction_files([path_a, path_b])
    assert left_out == {1: mark}
    assert fused_labels == [labels[0], labels[2], labels[3]]
    np.testing.assert_allclose(
        fused, np.add(a, b)[[0, 2, 3]], rtol=1e-6)
    tool = _load_tool()
    assert tool.main([path_b, path_a]) == 0
    out = capsys.readouterr().out
    assert 'on 3 of 4 listed videos' in out
    assert '1 left out (broken when tested): videos/b.mp4 (cannot decode)' \
        in out


def test_command_line_reports_bad_files(two_models, tmp_path, capsys):
    tool = _load_tool()
    broken = tmp_path / 'broken.pkl'
    dump([dict(score=1)], str(broken))
    assert tool.main([two_models[0], str(broken)]) == 1
    assert 'pred_score' in capsys.readouterr().err


def test_release_logit_sum_sums_relu_logits_of_every_view(tmp_path):
    """pkl_to_results.py --multi_segments: sum over models and views of
    max(logit, 0). Members dumped with average_clips='relu_score' hold
    mean_v max(s_v, 0); with V views each, their sum is the release's sum
    divided by V (same ranking)."""
    rng = np.random.default_rng(0)
    views, videos, classes = 3, 5, 4
    logits_a = rng.normal(0, 2, (videos, views, classes))
    logits_b = rng.normal(0, 2, (videos, views, classes))
    labels = [0, 1, 2, 3, 0]
    release = np.zeros((videos, classes))
    for logits in (logits_a, logits_b):
        for v in range(views):
            release = np.maximum(release, 0) + np.maximum(logits[:, v], 0)
    path_a = write_predictions(tmp_path / 'a.pkl',
                               np.maximum(logits_a, 0).mean(1), labels)
    path_b = write_predictions(tmp_path / 'b.pkl',
                               np.maximum(logits_b, 0).mean(1), labels)
    fused, _, _ = fuse_prediction_files([path_a, path_b],
                                        release_logit_sum=True)
    np.testing.assert_allclose(fused * views, release, rtol=1e-5)


def test_protocol_checks_the_kind_of_scores(two_models, tmp_path, capsys):
    path_a, path_b, a, *_ = two_models
    logits = write_predictions(tmp_path / 'l.pkl', np.array(a) * 7 + 1,
                               [0, 1, 2, 3])
    with pytest.raises(ScoreFileMismatch, match='average_clips=relu_score'):
        fuse_prediction_files([path_a, path_b], release_logit_sum=True)
    with pytest.raises(ScoreFileMismatch, match='--release-logit-sum'):
        fuse_prediction_files([path_a, logits])
    tool = _load_tool()
    assert tool.main([path_a, path_b, '--release-logit-sum']) == 1
    assert 'relu_score' in capsys.readouterr().err
