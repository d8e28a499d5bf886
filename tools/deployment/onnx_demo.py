# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Recognise a video with an exported ONNX model and onnxruntime only.

    python tools/deployment/onnx_demo.py CONFIG MODEL.onnx VIDEO \\
        [--label-map LABELS.txt] [--top-k 5]

The video is decoded (decord) and sampled by the config's test pipeline,
exactly as for ``tools/test.py`` (a rawframe pipeline's ``RawFrameDecode``
read as decord's, as ``export_onnx.py`` checks it); the frames go to
onnxruntime as float32 RGB 0-255 (the graph of ``export_onnx.py``
normalises them itself). No PyTorch model is built. Prints the top-k
classes with their scores.
"""
import argparse
import os.path as osp
import sys

import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO)


def video_array(config: str, video: str) -> np.ndarray:
    """``(1, V*T*L, 3, H, W)`` float32 frames of ``video`` through the
    config's test pipeline."""
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope

    import mmaction_tdx  # noqa: F401  (registers our transforms)
    from mmaction_tdx.apis import load_config
    if not osp.isfile(video):
        raise FileNotFoundError(f'Video {video} does not exist.')
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from export_onnx import video_pipeline
    cfg = load_config(config)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    data = Compose(video_pipeline(cfg.test_pipeline))(
        dict(filename=video, label=-1, start_index=0, modality='RGB'))
    return data['inputs'].numpy().astype(np.float32)[None]


def run(onnx_file: str, frames: np.ndarray) -> np.ndarray:
    """The ``(num_classes,)`` scores of onnxruntime for one video."""
    import onnxruntime as ort
    session = ort.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider'])
    expected = session.get_inputs()[0].shape[1:]
    if list(frames.shape[1:]) != list(expected):
        raise ValueError(
            f'The pipeline of the config gives frames of shape '
            f'{frames.shape[1:]}, but {onnx_file} was exported for '
            f'{tuple(expected)}. Use the config the model was exported '
            'with.')
    return session.run(None, {'inputs': frames})[0][0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config the model was exported '
                        'with (for its test pipeline)')
    parser.add_argument('onnx_file', help='model from export_onnx.py')
    parser.add_argument('video', help='video file')
    parser.add_argument('--label-map', help='class names, one a line')
    parser.add_argument('--top-k', type=int, default=5)
    args = parser.parse_args(argv)
    scores = run(args.onnx_file, video_array(args.config, args.video))
    labels = None
    if args.label_map:
        from mmaction_tdx.apis import load_label_map
        labels = load_label_map(args.label_map)
        if len(labels) != scores.size:
            raise ValueError(
                f'The model scores {scores.size} classes but the label map '
                f'{args.label_map} has {len(labels)} names; use the label '
                'map of the dataset the model was trained on.')
    order = np.argsort(-scores)[:args.top_k]
    print(f'Top-{len(order)} of {args.video}:')
    for rank, index in enumerate(order, 1):
        name = labels[index] if labels else f'class {index}'
        print(f'{rank}. {name}: {scores[index]:.4f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
