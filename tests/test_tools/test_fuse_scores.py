# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""tools/analysis/fuse_scores.py: ensembles from --dump files (the default
sum of probabilities and the TDN release's sum of ReLU'd logits), checks
and the command line."""
import importlib.util
import io
import os.path as osp
import pickle
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


class ShellPayload:
    """Unpickles as ``os.system('touch <marker>')``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f'touch {self.marker}', )


@pytest.mark.parametrize('protocol', [2, pickle.HIGHEST_PROTOCOL])
def test_score_file_payload_refused(two_models, tmp_path, capsys, protocol):
    """Score files are exchanged to fuse them (issue 23, finding 2): one
    whose pickle names a callable is refused, nothing in it runs, and the
    tool says why and exits 1."""
    marker = tmp_path / 'payload_ran'
    hostile = tmp_path / 'hostile.pkl'
    with open(hostile, 'wb') as f:
        pickle.dump([dict(pred_score=ShellPayload(marker),
                          gt_label=torch.tensor([0]))], f, protocol=protocol)
    tool = _load_tool()
    assert tool.main([two_models[0], str(hostile)]) == 1
    err = capsys.readouterr().err
    assert f'Refused to load the score file {hostile}' in err
    assert 'posix.system' in err and 'may be malicious' in err
    assert not marker.exists()


def test_score_file_with_numpy_and_metadata_loads(tmp_path):
    """What DumpResults writes for our datasets: tensors, numpy arrays,
    tuples, strings, the stand-in marks."""
    from mmaction_tdx.evaluation.score_files import load_score_file
    path = str(tmp_path / 'full.pkl')
    dump([
        dict(pred_score=torch.tensor([.2, .8]), gt_label=torch.tensor([1]),
             frame_inds=np.arange(4), img_shape=(64, 64), filename='a.mp4',
             replaces_left_out_sample=dict(index=3, path='b.mp4'))
    ], path)
    loaded = load_score_file(path)
    assert isinstance(loaded, list) and len(loaded) == 1
    sample = loaded[0]
    assert torch.equal(sample['pred_score'], torch.tensor([.2, .8]))
    np.testing.assert_array_equal(sample['frame_inds'], np.arange(4))
    assert sample['img_shape'] == (64, 64) and sample['filename'] == 'a.mp4'
    assert sample['replaces_left_out_sample'] == dict(index=3, path='b.mp4')


def test_score_file_tensor_data_read_weights_only(tmp_path):
    """A tensor's data in a plain pickle is a nested torch.save that
    pickle reads with torch.load(weights_only=False): a payload there is
    refused too."""
    from mmaction_tdx.evaluation.score_files import (
        UnsafeScoreFileError,
        load_score_file,
    )
    marker = tmp_path / 'payload_ran'
    nested = io.BytesIO()
    torch.save(ShellPayload(marker), nested)

    class Storage:

        def __reduce__(self):
            return torch.storage._load_from_bytes, (nested.getvalue(), )

    path = tmp_path / 'nested.pkl'
    with open(path, 'wb') as f:
        pickle.dump([dict(pred_score=Storage())], f, protocol=2)
    with pytest.raises(UnsafeScoreFileError, match='may be malicious'):
        load_score_file(str(path))
    assert not marker.exists()
