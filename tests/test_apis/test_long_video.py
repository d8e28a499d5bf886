# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Windowed and live recognition (mmaction_tdx.apis.video_recognizer).

The reference for a window is MMAction2's own ``inference_recognizer`` on
the window cut out as its own video (FFV1, lossless: decord decodes the
cut exactly as it decodes those frames of the long video).
"""
import os
import os.path as osp
import socket
import threading
import time

import numpy as np
import pytest
import torch

from mmaction_tdx.apis.frame_sources import (
    CaptureSource,
    FrameSourceError,
    VideoFileSource,
)
from mmaction_tdx.apis.video_recognizer import (
    VideoRecognizer,
    plan_windows,
    smooth_scores,
)

cv2 = pytest.importorskip('cv2')

TDN_CONFIG = ('configs/quickstart/'
              'tdn_r18_1xb16-5x1x4-12e_synthetic-motion-rgb.py')
FPS = 30


def write_lossless(path, frames, fps=FPS):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'FFV1'), fps,
                             (frames.shape[2], frames.shape[1]))
    assert writer.isOpened()
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    return path


@pytest.fixture(scope='module')
def long_video(tmp_path_factory, shared_dir):
    """50 real frames (two cuts of test.mp4 back to back), 64x48, FFV1."""
    import decord
    reader = decord.VideoReader(osp.join(shared_dir, 'data', 'videos',
                                         'test.mp4'))
    indices = list(range(0, 25)) + list(range(200, 225))
    frames = reader.get_batch(indices).asnumpy()
    frames = np.stack([cv2.resize(f, (64, 48)) for f in frames])
    path = str(tmp_path_factory.mktemp('long') / 'long.mkv')
    write_lossless(path, frames)
    return path, frames


@pytest.fixture(scope='module')
def recognizer():
    from mmaction_tdx.apis import load_config
    torch.manual_seed(0)
    cfg = load_config(TDN_CONFIG)
    return VideoRecognizer(cfg, None, device='cpu', top_k=3)


def test_plan_covers_the_whole_video_last_window_included():
    assert list(plan_windows(24, 12, 50)) == [(0, 24), (12, 36), (24, 48),
                                              (26, 50)]
    assert list(plan_windows(24, 12, 48)) == [(0, 24), (12, 36), (24, 48)]
    assert list(plan_windows(24, 24, 20)) == [(0, 20)]  # shorter: one
    gaps = list(plan_windows(10, 30, 75))  # stride > window: gaps, end
    assert gaps == [(0, 10), (30, 40), (60, 70), (65, 75)]
    for window, stride, n in ((24, 12, 50), (7, 3, 101), (20, 20, 40)):
        covered = set()
        for start, end in plan_windows(window, stride, n):
            assert end - start == min(window, n)
            covered.update(range(start, end))
        assert covered == set(range(n))
    stream = plan_windows(8, 4, None)  # a live source: no known end
    assert [next(stream) for _ in range(3)] == [(0, 8), (4, 12), (8, 16)]


def test_window_equals_recognition_of_the_cut_video(long_video, recognizer,
                                                    tmp_path):
    from mmaction.apis import inference_recognizer
    path, frames = long_video
    windows = list(recognizer.windows(path, window=24 / FPS,
                                      stride=12 / FPS))
    assert [(w.start_frame, w.end_frame) for w in windows] == [
        (0, 24), (12, 36), (24, 48), (26, 50)]
    assert windows[-1].end == pytest.approx(50 / FPS)
    for window in windows:
        cut = write_lossless(str(tmp_path / f'w{window.index}.mkv'),
                             frames[window.start_frame:window.end_frame])
        reference = inference_recognizer(recognizer.model,
                                         cut).pred_score.numpy()
        np.testing.assert_allclose(window.scores, reference, atol=1e-5,
                                   rtol=0)
        best = int(reference.argmax())
        assert window.top_k[0] == (recognizer.labels[best],
                                   pytest.approx(float(reference[best])))
    # The windows differ (different frames), so equality is not vacuous.
    assert np.abs(windows[0].scores - windows[2].scores).max() > 1e-6
    # The array path is the same clip: one call on the whole array equals
    # inference on the file.
    whole = inference_recognizer(recognizer.model, path).pred_score.numpy()
    np.testing.assert_allclose(recognizer.clip_scores(frames, len(frames)),
                               whole, atol=1e-5, rtol=0)


def test_frames_are_decoded_once_and_only_needed_ones_kept(
        long_video, recognizer):
    path, frames = long_video

    class CountingSource:
        fps, num_frames = FPS, len(frames)

        def __init__(self):
            self.delivered = 0

        def __iter__(self):
            for frame in frames:
                self.delivered += 1
                yield frame

    source = CountingSource()
    offsets = recognizer.frame_offsets(24)
    assert len(offsets) == recognizer.min_frames == 20  # 4 segments x 5
    assert len(list(recognizer.windows(source, 24 / FPS, 12 / FPS))) == 4
    assert source.delivered == len(frames) == 50  # once each, 4 windows


def test_stream_equals_windows(long_video, recognizer):
    """OpenCV reading the file progressively (a stream: no known length)
    gives the windowed predictions, but for the last one, which needs the
    length."""
    path, _ = long_video
    windowed = list(recognizer.windows(VideoFileSource(path), 24 / FPS,
                                       12 / FPS))
    source = CaptureSource(path, open_timeout=20)
    assert source.num_frames is None
    streamed = list(recognizer.windows(source, 24 / FPS, 12 / FPS))
    assert [(w.start_frame, w.end_frame) for w in streamed] == [
        (0, 24), (12, 36), (24, 48)]
    for a, b in zip(streamed, windowed):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6, rtol=0)
        assert a.latency_s > 0


def test_bad_inputs_are_named(tmp_path, recognizer, long_video):
    garbage = tmp_path / 'garbage.mp4'
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(FrameSourceError, match='Cannot decode'):
        VideoFileSource(str(garbage))
    empty = tmp_path / 'empty.mp4'
    empty.write_bytes(b'')
    with pytest.raises(FrameSourceError, match='empty file'):
        VideoFileSource(str(empty))
    with pytest.raises(FrameSourceError, match='does not exist'):
        VideoFileSource(str(tmp_path / 'missing.mp4'))
    fifo = tmp_path / 'pipe.mp4'
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(FrameSourceError, match='not a regular file'):
        VideoFileSource(str(fifo))
    assert time.monotonic() - started < 5
    # A window shorter than the frames one clip of the model reads.
    with pytest.raises(ValueError, match=r'reads 20 frames.*--window'):
        next(recognizer.windows(long_video[0], window=10 / FPS))
    # A stream that stops before the first window is complete.
    short = long_video[1][:15]
    with pytest.raises(FrameSourceError, match='ended after 15 frames'):
        list(recognizer.windows(iter_source(short), window=24 / FPS))
    with pytest.raises(FrameSourceError, match='no frame'):
        list(recognizer.windows(iter_source(short[:0]), window=24 / FPS))


class iter_source:
    """A live source (no known length) delivering ``frames``."""
    fps, num_frames = FPS, None

    def __init__(self, frames):
        self.frames = frames

    def __iter__(self):
        return iter(self.frames)


def test_stream_that_never_starts_times_out():
    """A server that accepts and then says nothing: opening stops at the
    time limit (loopback only, bounded)."""
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(1)
    port = server.getsockname()[1]
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(FrameSourceError, match='within 1 s'):
            CaptureSource(f'http://127.0.0.1:{port}/live.mp4',
                          open_timeout=1)
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def test_smoothing_is_a_centred_moving_average():
    scores = np.array([[1., 0.], [0., 1.], [1., 0.], [0., 1.]])
    np.testing.assert_allclose(
        smooth_scores(scores, 3),
        [[.5, .5], [2 / 3, 1 / 3], [1 / 3, 2 / 3], [.5, .5]])
    assert smooth_scores(scores, 1) is scores
    with pytest.raises(ValueError, match='odd'):
        smooth_scores(scores, 2)


def test_demo_writes_json_csv_png(long_video, tmp_path, capsys):
    import json

    from conftest import load_tool
    demo = load_tool('demo/long_video_demo.py')
    labels = tmp_path / 'labels.txt'
    labels.write_text('\n'.join(f'class {i}' for i in range(10)))
    out = {k: str(tmp_path / f'out.{k}') for k in ('json', 'csv', 'png')}
    code = demo.main([
        TDN_CONFIG, 'none', long_video[0], str(labels), '--window', '0.8',
        '--stride', '0.4', '--device', 'cpu', '--smooth', '3',
        '--out-json', out['json'], '--out-csv', out['csv'], '--out-png',
        out['png']
    ])
    assert code == 0
    report = json.load(open(out['json']))
    assert report['settings']['smoothing_windows'] == 3
    assert report['model']['frames_per_clip'] == 20
    assert [(w['start_frame'], w['end_frame'])
            for w in report['windows']] == [(0, 24), (12, 36), (24, 48),
                                            (26, 50)]
    assert len(open(out['csv']).read().splitlines()) == 1 + 4 * 5
    assert open(out['png'], 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    # Bad input: a message and exit 1, no traceback.
    code = demo.main([TDN_CONFIG, 'none', str(tmp_path / 'nope.mp4'),
                      str(labels)])
    err = capsys.readouterr().err
    assert code == 1 and 'does not exist' in err and 'Traceback' not in err
