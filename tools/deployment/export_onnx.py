# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Export a whole recognizer of ours to ONNX and check it with onnxruntime.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx

The ONNX graph takes what the config's test pipeline produces for one
video, batched: ``inputs`` ``(N, V*T*L, 3, H, W)`` float32 RGB in
``[0, 255]`` (``V`` views, ``T`` segments, ``L`` frames per segment; the
batch ``N`` is dynamic), and returns ``scores`` ``(N, num_classes)``, the
``pred_score`` of ``model.test_step``: the data preprocessor's
normalisation, the backbone, the head and the averaging over views
(``average_clips``) are all in the graph. The shape comes from the test
pipeline (``SampleFrames``, ``CenterCrop``/``ThreeCrop``/``TenCrop``), or
``--shape``.

After exporting, the tool runs onnxruntime and PyTorch on the same random
input (batch 2, i.e. not the traced batch of 1) and prints the max abs
difference; it exits with 1 when that exceeds ``--rtol`` (1e-4) times the
output scale (the max abs PyTorch output). ``--deploy`` first applies the
models' ``switch_to_deploy()`` (one-time inference reparameterisation,
e.g. BN folding in TDN), which computes the same function.

Needs ``onnx`` and ``onnxruntime`` (``pip install mmaction_tdx[deploy]``).
See docs/deployment.md.
"""
import argparse
import os.path as osp
import sys
import warnings
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, REPO)

CROPS = {'ThreeCrop': 3, 'TenCrop': 10}


class ExportableRecognizer(nn.Module):
    """``model.test_step`` as a tensor function, for tracing.

    Reuses the recognizer's own pieces: its data preprocessor's ``mean`` /
    ``std`` / ``to_rgb``, ``extract_feat(stage='head', test_mode=True)``
    (upstream's path, the one ``predict`` takes) and the head's
    ``average_clip``.

    Args:
        model (nn.Module): A recognizer (``SegmentRecognizer2D`` or
            MMAction2's ``Recognizer2D``) in eval mode.

    Shape:
        ``(N, V*T*L, 3, H, W)`` RGB in ``[0, 255]`` -> ``(N, K)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        preprocessor = model.data_preprocessor
        self.to_rgb = bool(getattr(preprocessor, 'to_rgb', False))
        self.normalize = bool(getattr(preprocessor, '_enable_normalize',
                                      False))
        if getattr(preprocessor, 'format_shape', 'NCHW') != 'NCHW':
            raise ValueError(
                'export_onnx.py exports 2D recognizers (data_preprocessor '
                f'format_shape="NCHW"), got "{preprocessor.format_shape}".')

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        preprocessor = self.model.data_preprocessor
        if self.to_rgb:
            inputs = inputs[:, :, [2, 1, 0]]
        if self.normalize:
            inputs = (inputs - preprocessor.mean) / preprocessor.std
        scores, _ = self.model.extract_feat(
            inputs, stage='head', test_mode=True)
        # As BaseHead.predict_by_feat: the views of a sample are the rows
        # per input sample left after the head's consensus.
        views = scores.shape[0] // inputs.shape[0]
        return self.model.cls_head.average_clip(scores, num_segs=views)


def _crop_size(step: dict) -> Tuple[int, int]:
    size = step['crop_size']
    if isinstance(size, int):
        return size, size
    return int(size[1]), int(size[0])  # MMAction2 crops take (w, h)


def input_shape(pipeline: Sequence[dict]) -> Tuple[int, int, int, int]:
    """``(V*T*L, 3, H, W)`` one video yields through ``pipeline``.

    Raises:
        ValueError: If the pipeline does not fix the frame count or the
            spatial size (e.g. a resize without a crop); pass ``--shape``.
    """
    frames, views, size = None, 1, None
    for step in pipeline:
        kind = step.get('type')
        if kind in ('SampleFrames', 'DenseSampleFrames'):
            frames = step.get('clip_len', 1) * step.get('num_clips', 1)
            if step.get('twice_sample', False):
                frames *= 2
            if kind == 'DenseSampleFrames':
                frames *= step.get('num_sample_positions', 10)
        elif kind == 'CenterCrop':
            size = _crop_size(step)
        elif kind in CROPS:
            size, views = _crop_size(step), CROPS[kind]
        elif kind == 'Resize' and step.get('keep_ratio') is False:
            scale = step['scale']
            size = (int(scale[1]), int(scale[0]))
    if frames is None or size is None:
        raise ValueError(
            'Cannot read the input shape from the test pipeline (it needs '
            'SampleFrames and a CenterCrop/ThreeCrop/TenCrop or a Resize '
            'with keep_ratio=False); pass it as --shape FRAMES HEIGHT '
            'WIDTH.')
    return frames * views, 3, size[0], size[1]


def load_model(config: str, checkpoint: Optional[str],
               deploy: bool = False,
               cfg_options: Optional[dict] = None) -> nn.Module:
    """The recognizer in eval mode on CPU, optionally reparameterised."""
    from mmaction_tdx.apis import init_video_recognizer
    if checkpoint in (None, 'none', 'None'):
        checkpoint = None
    model = init_video_recognizer(
        config, checkpoint, device='cpu', cfg_options=cfg_options)
    model.eval()
    if deploy:
        switch_to_deploy(model)
    return model


def switch_to_deploy(model: nn.Module) -> List[str]:
    """Call ``switch_to_deploy()`` of every submodule that has one (once,
    outermost first); returns their names."""
    done: List[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(d + '.') for d in done if d):
            continue
        if module is not model and hasattr(module, 'switch_to_deploy'):
            module.switch_to_deploy()
            done.append(name)
    return done


def export(wrapper: nn.Module, shape: Sequence[int], out: str,
           opset: int = 17) -> None:
    """Trace ``wrapper`` on a batch of one and write ``out``; the batch
    axis of ``inputs`` and ``scores`` is dynamic."""
    # Eval mode before the export: the exporter restores the mode it found,
    # and a wrapper built in train mode would put BN and dropout back into
    # training for every later PyTorch call.
    wrapper.eval()
    example = torch.rand(1, *shape) * 255
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript-based exporter: the dynamo one needs onnxscript,
        # which is not a dependency of ours.
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            wrapper, (example, ),
            out,
            input_names=['inputs'],
            output_names=['scores'],
            dynamic_axes={'inputs': {0: 'batch'}, 'scores': {0: 'batch'}},
            opset_version=opset,
            dynamo=False)


def compare_with_onnxruntime(wrapper: nn.Module, onnx_file: str,
                             inputs: torch.Tensor) -> Tuple[float, float]:
    """``(max abs difference, output scale)`` of onnxruntime vs PyTorch
    on ``inputs``; the scale is the max abs PyTorch output."""
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ImportError(
            'onnxruntime is needed to check the export: `pip install '
            'mmaction_tdx[deploy]` (or `pip install onnx onnxruntime`).'
        ) from error
    session = ort.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider'])
    ort_out = session.run(None, {'inputs': inputs.numpy()})[0]
    wrapper.eval()
    with torch.no_grad():
        torch_out = wrapper(inputs)
    diff = (torch.from_numpy(ort_out) - torch_out).abs().max().item()
    return diff, torch_out.abs().max().item()


def parse_args(argv=None) -> argparse.Namespace:
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
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument(
        '--deploy', action='store_true',
        help="apply the models' switch_to_deploy() before exporting")
    parser.add_argument(
        '--rtol', type=float, default=1e-4,
        help='fail above this max abs difference / output scale')
    parser.add_argument(
        '--cfg-options', nargs='+', default=None, metavar='KEY=VALUE',
        help='override config settings, as in tools/test.py')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg_options = None
    if args.cfg_options:
        from mmengine.config import DictAction
        cfg_options = {}
        DictAction(None, 'cfg_options')(None, cfg_options,
                                        args.cfg_options)
    model = load_model(args.config, args.checkpoint, args.deploy,
                       cfg_options)
    if args.shape:
        shape = (args.shape[0], 3, args.shape[1], args.shape[2])
    else:
        shape = input_shape(model.cfg.test_pipeline)
    wrapper = ExportableRecognizer(model).eval()
    export(wrapper, shape, args.out, args.opset)
    inputs = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    diff, scale = compare_with_onnxruntime(wrapper, args.out, inputs * 255)
    ratio = diff / max(scale, 1e-12)
    print(f'Exported {args.out}: inputs (batch, {", ".join(map(str, shape))})'
          f' float32 RGB 0-255 -> scores (batch, '
          f'{model.cls_head.num_classes}).')
    print(f'onnxruntime vs PyTorch (batch 2): max abs difference '
          f'{diff:.3g}, output scale {scale:.3g}, ratio {ratio:.3g} '
          f'(limit {args.rtol:g}).')
    if ratio > args.rtol:
        print('FAILED: the ONNX model does not compute what the PyTorch '
              'model does.', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
