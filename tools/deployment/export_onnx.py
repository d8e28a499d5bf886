# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Export a whole recognizer of ours to ONNX and check it with onnxruntime.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx \\
        [--video VIDEO] [--deploy] [--no-strict]

The ONNX graph takes what the config's test pipeline produces for one
video, batched: ``inputs`` ``(N, V*T*L, 3, H, W)`` float32 RGB in
``[0, 255]`` (``V`` views, ``T`` segments, ``L`` frames per segment; the
batch ``N`` is dynamic). It returns

* ``scores`` ``(N, K)``: the ``pred_score`` of ``model.test_step``, i.e.
  the data preprocessor's normalisation, the backbone, the head and the
  fusion of the views by the head's ``average_clips`` (e.g. ``'prob'``:
  ``mean_v softmax(s_v)``), all in the graph;
* ``logits`` ``(N, V', K)``: the head's pre-softmax scores ``s_v`` before
  that fusion (``V' = V`` for a per-view head such as
  ``ViewConsensusTSNHead``, 1 for ``TSNHead``, which averages the features
  of all views).

The input shape is read from the test pipeline by the library's sampling
contract (:mod:`mmaction_tdx.datasets.sampling_contract`: every sampler,
``SegmentSampleFrames(num_views)``, ``twice_sample``, the crops), or given
as ``--shape``.

The check: onnxruntime and PyTorch score the same batch of 2 (not the
traced batch of 1) made of the frames of a real video decoded by the
config's test pipeline (``--video``; by default the test video beside a
development checkout, ``../shared/data/videos/test.mp4``) and their
left-right mirror. Both outputs are compared; the tool prints the max abs
difference of each divided by its scale (the max abs PyTorch value) and
exits with 1 when one exceeds ``--rtol`` (1e-4). The logits decide: a
trained model's softmax saturates (differences of 0 prove nothing), its
logits do not. Without a video the check runs on uniform noise and says so.

The checkpoint must fit the model (the same strict loading as training);
``--no-strict`` loads what fits. ``--deploy`` first applies the models'
``switch_to_deploy()`` (one-time inference reparameterisation, e.g. BN
folding in TDN), which computes the same function.

Needs ``onnx`` and ``onnxruntime`` (from a clone: ``pip install
".[deploy]"``). See docs/deployment.md.
"""
import argparse
import copy
import os.path as osp
import sys
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO)

#: The check's video when ``--video`` is not given: the test video of a
#: development checkout (``shared/`` beside the repository).
DEFAULT_VIDEO = osp.normpath(
    osp.join(REPO, '..', 'shared', 'data', 'videos', 'test.mp4'))
OUTPUTS = ('scores', 'logits')


class ExportableRecognizer(nn.Module):
    """``model.test_step`` as a tensor function, for tracing.

    Reuses the recognizer's own pieces: its data preprocessor's ``mean`` /
    ``std`` / ``to_rgb``, ``extract_feat(stage='head', test_mode=True)``
    (upstream's path, the one ``predict`` takes; a per-view head returns
    one score row per view) and the head's ``average_clip`` with
    ``num_segs`` = rows per sample, as ``BaseHead.predict_by_feat`` does.

    Args:
        model (nn.Module): A recognizer (``SegmentRecognizer2D`` or
            MMAction2's ``Recognizer2D``) in eval mode.
        with_logits (bool): Also return the head's scores before
            ``average_clip`` (pre-softmax). Defaults to False.

    Shape:
        ``(N, V*T*L, 3, H, W)`` RGB in ``[0, 255]`` -> ``scores`` ``(N, K)``
        (and ``logits`` ``(N, V', K)`` with ``with_logits``).
    """

    def __init__(self, model: nn.Module, with_logits: bool = False) -> None:
        super().__init__()
        self.model = model
        self.with_logits = with_logits
        preprocessor = model.data_preprocessor
        self.to_rgb = bool(getattr(preprocessor, 'to_rgb', False))
        self.normalize = bool(getattr(preprocessor, '_enable_normalize',
                                      False))
        if getattr(preprocessor, 'format_shape', 'NCHW') != 'NCHW':
            raise ValueError(
                'export_onnx.py exports 2D recognizers (data_preprocessor '
                f'format_shape="NCHW"), got "{preprocessor.format_shape}".')

    def forward(
        self, inputs: torch.Tensor
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        preprocessor = self.model.data_preprocessor
        if self.to_rgb:
            inputs = inputs[:, :, [2, 1, 0]]
        if self.normalize:
            inputs = (inputs - preprocessor.mean) / preprocessor.std
        logits, _ = self.model.extract_feat(
            inputs, stage='head', test_mode=True)
        # As BaseHead.predict_by_feat: the views of a sample are the rows
        # per input sample the head returns.
        views = logits.shape[0] // inputs.shape[0]
        scores = self.model.cls_head.average_clip(logits, num_segs=views)
        if not self.with_logits:
            return scores
        return scores, logits.reshape(-1, views, logits.shape[-1])


def input_shape(pipeline: Sequence[dict]) -> Tuple[int, int, int, int]:
    """``(V*T*L, 3, H, W)`` one video yields through ``pipeline``, by the
    library's sampling contract.

    Raises:
        ValueError: If the pipeline does not fix the frame count or the
            spatial size (e.g. a resize without a crop); pass ``--shape``.
    """
    from mmaction_tdx.datasets.sampling_contract import (
        input_shape as contract_shape,
    )
    try:
        return contract_shape(pipeline)
    except ValueError as error:
        raise ValueError(f'{error} Pass the shape as --shape FRAMES HEIGHT '
                         'WIDTH.') from error


def load_model(config: str, checkpoint: Optional[str],
               deploy: bool = False,
               cfg_options: Optional[dict] = None,
               strict: bool = True) -> nn.Module:
    """The recognizer in eval mode on CPU, optionally reparameterised.

    The checkpoint is loaded strictly (missing, unexpected or mismatched
    keys raise, listing them) unless ``strict=False``.
    """
    from mmaction_tdx.apis import init_video_recognizer
    from mmaction_tdx.datasets.sampling_contract import bind_view_heads
    if checkpoint in (None, 'none', 'None'):
        checkpoint = None
    model = init_video_recognizer(
        config, checkpoint, device='cpu', cfg_options=cfg_options,
        strict=strict)
    bind_view_heads(model)  # idempotent; a per-view head needs its T
    model.eval()
    if deploy:
        from mmaction_tdx.apis import switch_to_deploy
        switch_to_deploy(model)
    return model


def export(wrapper: ExportableRecognizer, shape: Sequence[int], out: str,
           opset: int = 17) -> None:
    """Trace ``wrapper`` on a batch of one and write ``out`` with the
    outputs ``scores`` and ``logits``; the batch axis is dynamic."""
    # Eval mode before the export: the exporter restores the mode it found,
    # and a wrapper built in train mode would put BN and dropout back into
    # training for every later PyTorch call.
    wrapper.eval()
    with_logits = wrapper.with_logits
    wrapper.with_logits = True
    example = torch.rand(1, *shape) * 255
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript-based exporter: the dynamo one needs
            # onnxscript, which is not a dependency of ours.
            warnings.simplefilter('ignore', DeprecationWarning)
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            # The exporter's note that it keeps strided slices (TSM's
            # shift) as they are: nothing for a user to act on.
            warnings.filterwarnings(
                'ignore', message='Constant folding', category=UserWarning)
            torch.onnx.export(
                wrapper, (example, ),
                out,
                input_names=['inputs'],
                output_names=list(OUTPUTS),
                dynamic_axes={
                    'inputs': {0: 'batch'},
                    'scores': {0: 'batch'},
                    'logits': {0: 'batch'}
                },
                opset_version=opset,
                dynamo=False)
    finally:
        wrapper.with_logits = with_logits


def video_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """``pipeline`` made to read a video file: a rawframe pipeline's
    ``RawFrameDecode`` becomes ``DecordDecode`` after a ``DecordInit``;
    the sampling, resizing and crops are kept as they are."""
    steps = [copy.deepcopy(dict(step)) for step in pipeline]
    if not any(step.get('type') == 'RawFrameDecode' for step in steps):
        return steps
    out = [dict(type='DecordInit')]
    for step in steps:
        if step.get('type') == 'RawFrameDecode':
            step = dict(type='DecordDecode')
        out.append(step)
    return out


def video_frames(cfg, video: str) -> torch.Tensor:
    """``(V*T*L, 3, H, W)`` float32 RGB 0-255 of ``video`` through the
    config's test pipeline (:func:`video_pipeline`)."""
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    if not osp.isfile(video):
        raise FileNotFoundError(f'Video {video} does not exist; pass an '
                                'existing file with --video.')
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    data = Compose(video_pipeline(cfg.test_pipeline))(
        dict(filename=video, label=-1, start_index=0, modality='RGB'))
    return data['inputs'].float()


def check_inputs(cfg, shape: Sequence[int],
                 video: Optional[str]) -> Tuple[torch.Tensor, str]:
    """The batch of 2 the check scores and what it is.

    Real frames when a video is given or ``DEFAULT_VIDEO`` exists: the
    test pipeline's frames and their left-right mirror. Noise (with a
    warning on stderr) without a video, or when ``--shape`` differs from
    what the pipeline gives.
    """
    if video is None and osp.isfile(DEFAULT_VIDEO):
        video = DEFAULT_VIDEO
    reason = 'no --video given and no test video found'
    if video is not None:
        frames = video_frames(cfg, video)
        if tuple(frames.shape) == tuple(shape):
            return (torch.stack([frames, frames.flip(-1)]),
                    f'frames of {video} and their mirror')
        reason = (f'the test pipeline gives frames of shape '
                  f'{tuple(frames.shape)} for {video}, not --shape '
                  f'{tuple(shape)}')
    print(f'WARNING: checking on uniform noise, not decoded frames '
          f'({reason}); a trained model is checked best on a real video: '
          'pass --video.', file=sys.stderr)
    noise = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    return noise * 255, 'uniform noise'


def compare_with_onnxruntime(
        wrapper: ExportableRecognizer, onnx_file: str,
        inputs: torch.Tensor) -> List[Tuple[str, float, float, tuple]]:
    """``[(output name, max abs difference, scale, shape), ...]`` of
    onnxruntime vs PyTorch on ``inputs`` for each output of ``onnx_file``
    (``scores``, ``logits``); the scale is the max abs PyTorch value."""
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ImportError(
            'onnxruntime is needed to check the export: from a clone, '
            '`pip install ".[deploy]"` (or `pip install onnx onnxruntime`).'
        ) from error
    session = ort.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider'])
    names = [output.name for output in session.get_outputs()]
    got = session.run(None, {'inputs': inputs.numpy()})
    wrapper.eval()
    with_logits = wrapper.with_logits
    wrapper.with_logits = True
    try:
        with torch.no_grad():
            want = dict(zip(OUTPUTS, wrapper(inputs)))
    finally:
        wrapper.with_logits = with_logits
    results = []
    for name, value in zip(names, got):
        value = torch.from_numpy(value)
        if value.shape != want[name].shape:
            raise ValueError(
                f'{onnx_file} gives {name} of shape {tuple(value.shape)} '
                f'but the PyTorch model {tuple(want[name].shape)}: the '
                'graph was exported for another model or input shape.')
        diff = (value - want[name]).abs().max().item()
        results.append((name, diff, want[name].abs().max().item(),
                        tuple(value.shape)))
    return results


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Export a recognizer to ONNX and check it with '
        'onnxruntime.')
    parser.add_argument('config', help='model config file')
    parser.add_argument(
        'checkpoint', help='checkpoint file ("none": random weights)')
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument(
        '--shape', type=int, nargs=3, metavar=('FRAMES', 'HEIGHT', 'WIDTH'),
        help='input frames per sample (V*T*L) and crop size; default: read '
        'from the test pipeline')
    parser.add_argument(
        '--video', default=None,
        help='video whose decoded frames the check scores (default: '
        f'{DEFAULT_VIDEO} if it exists, else uniform noise)')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument(
        '--deploy', action='store_true',
        help="apply the models' switch_to_deploy() before exporting")
    parser.add_argument(
        '--no-strict', action='store_true',
        help='load a checkpoint that does not fit the model (missing, '
        'unexpected or mismatched keys keep their random values)')
    parser.add_argument(
        '--rtol', type=float, default=1e-4,
        help='fail above this max abs difference / output scale')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default=None,
        metavar='KEY=VALUE',
        help='override config settings, as in tools/test.py')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg_options = args.cfg_options
    from mmaction_tdx.apis import CheckpointMismatchError
    try:
        model = load_model(args.config, args.checkpoint, args.deploy,
                           cfg_options, strict=not args.no_strict)
    except CheckpointMismatchError as error:
        print(f'FAILED: {error}', file=sys.stderr)
        return 1
    if args.shape:
        shape = (args.shape[0], 3, args.shape[1], args.shape[2])
    else:
        shape = input_shape(model.cfg.test_pipeline)
    wrapper = ExportableRecognizer(model).eval()
    export(wrapper, shape, args.out, args.opset)
    inputs, source = check_inputs(model.cfg, shape, args.video)
    results = compare_with_onnxruntime(wrapper, args.out, inputs)
    shapes = ', '.join(f'{name} (batch, {", ".join(map(str, shp[1:]))})'
                       for name, _, _, shp in results)
    print(f'Exported {args.out}: inputs (batch, {", ".join(map(str, shape))})'
          f' float32 RGB 0-255 -> {shapes}.')
    print(f'onnxruntime vs PyTorch on {source} (batch 2):')
    failed = []
    for name, diff, scale, _ in results:
        ratio = diff / max(scale, 1e-12)
        print(f'  {name}: max abs difference {diff:.3g}, scale {scale:.3g}, '
              f'ratio {ratio:.3g} (limit {args.rtol:g})')
        if not ratio <= args.rtol:  # NaN fails too
            failed.append(name)
    if failed:
        print(f'FAILED: the ONNX model does not compute what the PyTorch '
              f'model does ({", ".join(failed)} differ).', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    # tools/_quiet.py hides the known upstream warnings (command line only).
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from _quiet import quiet_upstream
    quiet_upstream()
    sys.exit(main())
