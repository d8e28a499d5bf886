# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Data pipeline throughput measurement, on one real video."""
import importlib.util
import os.path as osp

import pytest

TOOL = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools',
    'analysis', 'benchmark_pipeline.py')
_spec = importlib.util.spec_from_file_location('benchmark_pipeline', TOOL)
pipe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pipe)


def test_transforms_sample_consecutive_runs():
    settings = pipe.PipelineSettings(num_segments=8)
    decode = pipe.sampling_transforms(5, settings, 'decode')
    assert [t['type'] for t in decode] == [
        'DecordInit', 'SampleFrames', 'DecordDecode'
    ]
    assert decode[1] == dict(
        type='SampleFrames', clip_len=5, frame_interval=1, num_clips=8)
    train = pipe.sampling_transforms(1, settings, 'train')
    assert train[-1]['type'] == 'PackActionInputs'
    with pytest.raises(ValueError, match='variant'):
        pipe.sampling_transforms(1, settings, 'test')


def test_find_videos(shared_dir, tmp_path):
    videos = pipe.find_videos(osp.join(shared_dir, 'data', 'videos'))
    assert videos and all(osp.isfile(v) for v in videos)
    with pytest.raises(FileNotFoundError, match='No videos'):
        pipe.find_videos(str(tmp_path))


def test_throughput_of_tsn_and_tdn_sampling(shared_dir):
    video = osp.join(shared_dir, 'data', 'videos', 'test.avi')
    settings = pipe.PipelineSettings(num_segments=4, repeats=2, img_size=64)
    results = pipe.run_pipeline_benchmark([video], settings)
    assert [(r.variant, r.sampling) for r in results] == [
        ('decode', 'tsn'), ('decode', 'tdn'), ('train', 'tsn'),
        ('train', 'tdn')
    ]
    assert [r.frames_per_clip for r in results] == [4, 20, 4, 20]
    assert all(r.clips == 2 and r.clips_per_s > 0 for r in results)
    ratios = pipe.throughput_ratios(results)
    assert set(ratios) == {'decode', 'train'}
    table = pipe.format_pipeline_table(results).splitlines()
    assert len(table) == 6
    assert all(line.count('|') == table[0].count('|') for line in table)
    record = pipe.pipeline_results_to_json(results, settings, [video])
    assert record['tdn_over_tsn'] == ratios
