# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Weights for :class:`~mmaction_tdx.models.backbones.ResNetTDN`.

* :func:`torchvision_resnet_key`: our (MMAction2 ``ConvModule``) key of a
  ResNet tensor -> the torchvision key of the same tensor (ImageNet init).
* :func:`convert_release_checkpoint`: a checkpoint of the official release
  (``MCG-NJU/TDN``, saved by its ``main.py``) -> a checkpoint that
  ``load_from`` / ``init_recognizer`` load into a model built from
  ``configs/_base_/models/tdn_r50.py`` (or ``tdn_r101.py``).

Facts about the release's checkpoints this relies on: a dict with
``state_dict`` (DDP keys ``module.base_model.*`` and ``module.new_fc.*``),
``optimizer``, ``scheduler`` (a ``MultiStepLR`` state holds a
``collections.Counter``), ``epoch``, ``arch``, ``prec1`` and
``best_prec1``. Its ResNet body is Cadene's ``fbresnet``, in which every
conv has a bias; each of those convs feeds a BatchNorm, so the bias is
folded into the BN's running mean (exact, see :func:`fold_conv_bias`).
``conv1_temp`` (and ``conv1_temp1`` in early versions) is an unused copy
of ``conv1`` and is dropped.
"""
import collections
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from mmaction_tdx.compat.safe_checkpoint import (
    CheckpointFileError,
    UnsafeCheckpointError,
    load_checkpoint_file,
)

from .tdn_class_orders import LABEL_ORDERS, check_permutation

_RESNET_CONV = re.compile(
    r'^(layer\d+\.\d+)\.(conv\d|downsample)\.(conv|bn)\.(\w+)$')
_STEM = re.compile(r'^conv1\.(conv|bn)\.(\w+)$')

# Our L-TDM layer -> the release's ``mSEModule`` layer.
LTDM_RELEASE_NAMES = {
    'squeeze.conv': 'conv1',
    'squeeze.bn': 'bn1',
    'align': 'conv2',
    'full_scale.conv': 'conv3_smallscale4',
    'full_scale.bn': 'bn3_smallscale4',
    'half_scale.conv': 'conv3_smallscale2',
    'half_scale.bn': 'bn3_smallscale2',
    'expand.conv': 'conv3',
    'expand.bn': 'bn3',
}
RELEASE_UNUSED_PREFIXES = ('base_model.conv1_temp.', 'base_model.conv1_temp1.')
RELEASE_DEPTHS = {6: 50, 23: 101}  # blocks in layer3 -> depth
# Non-tensor types pickled in the release's checkpoints (the scheduler's
# ``milestones``); everything else is plain containers and numbers.
RELEASE_CHECKPOINT_GLOBALS = [collections.Counter]


def torchvision_resnet_key(key: str) -> Optional[str]:
    """torchvision's name of a ResNet tensor of ResNetTDN.

    ``conv1.conv.weight -> conv1.weight``, ``conv1.bn.X -> bn1.X``,
    ``layer1.0.conv2.bn.X -> layer1.0.bn2.X``,
    ``layer1.0.downsample.conv.weight -> layer1.0.downsample.0.weight``;
    the S-TDM's stages (``stdm.layer1...``) map to the same torchvision
    stages. Keys without a torchvision counterpart (S-TDM stem, L-TDM,
    temporal modules) give None.
    """
    if key.startswith('stdm.'):
        key = key[len('stdm.'):]
        if not key.startswith('layer'):
            return None
    match = _STEM.match(key)
    if match:
        kind, attr = match.groups()
        return f'conv1.{attr}' if kind == 'conv' else f'bn1.{attr}'
    match = _RESNET_CONV.match(key)
    if not match:
        return None
    block, layer, kind, attr = match.groups()
    if layer == 'downsample':
        index = '0' if kind == 'conv' else '1'
        return f'{block}.downsample.{index}.{attr}'
    if kind == 'conv':
        return f'{block}.{layer}.{attr}'
    return f'{block}.{layer.replace("conv", "bn")}.{attr}'


def release_key(key: str) -> Optional[str]:
    """The release's key (after ``module.``) of a ResNetTDN tensor.

    Args:
        key (str): A key of ``ResNetTDN.state_dict()`` (default design).

    Returns:
        str | None: e.g. ``layer2.0.ltdm.align.weight ->
        base_model.layer2_bak.0.mse.conv2.weight``; None if unknown.
    """
    if key.startswith('stdm.stem.'):
        kind, attr = key[len('stdm.stem.'):].split('.', 1)
        return f'base_model.conv1_5.{0 if kind == "conv" else 1}.{attr}'
    match = re.match(r'^(layer\d+)\.(\d+)\.(ltdm|temporal)\.(.+)$', key)
    if match:
        layer, index, unit, rest = match.groups()
        prefix = f'base_model.{layer}_bak.{index}'
        if unit == 'temporal':
            return f'{prefix}.shift.{rest}' if rest == 'conv.weight' \
                else None
        for ours, theirs in LTDM_RELEASE_NAMES.items():
            if rest.startswith(ours + '.'):
                return f'{prefix}.mse.{theirs}{rest[len(ours):]}'
        return None
    tv_key = torchvision_resnet_key(key)
    if tv_key is None:
        return None
    if key.startswith('stdm.'):
        if not tv_key.startswith('layer1.'):
            return None  # the release's motion path has layer1 only
        return 'base_model.resnext_' + tv_key
    if tv_key.startswith('layer'):
        layer, rest = tv_key.split('.', 1)
        return f'base_model.{layer}_bak.{rest}'
    return f'base_model.{tv_key}'


def fold_conv_bias(bn_running_mean: torch.Tensor,
                   conv_bias: torch.Tensor) -> torch.Tensor:
    """Running mean of a BN that absorbs the bias of the conv before it.

    ``BN(Wx + b)`` with statistics ``(mu, var)`` equals ``BN(Wx)`` with
    ``(mu - b, var)``: in eval mode ``(Wx + b - mu) = (Wx - (mu - b))``; in
    training the batch mean absorbs ``b`` and the variance does not depend
    on it, and the running-mean update is affine, so it stays offset by
    exactly ``b``.
    """
    return bn_running_mean - conv_bias


def load_release_checkpoint(path: str) -> dict:
    """Load a release checkpoint with ``weights_only=True``.

    Only :data:`RELEASE_CHECKPOINT_GLOBALS` are allowed besides tensors and
    plain containers.

    Raises:
        ValueError: if the file cannot be unpickled that way.
    """
    try:
        return load_checkpoint_file(
            path, 'cpu', extra_globals=RELEASE_CHECKPOINT_GLOBALS,
            allow_mmengine=False)
    except UnsafeCheckpointError as err:
        raise ValueError(
            f'{path} holds objects that a TDN release checkpoint does not '
            'hold (allowed: tensors, plain containers and '
            f'{[g.__name__ for g in RELEASE_CHECKPOINT_GLOBALS]}); it is '
            'not a checkpoint of MCG-NJU/TDN and was refused as unsafe '
            '(unpickling other objects can run arbitrary code; it was not '
            f'created). Details: {err.details}') from None
    except CheckpointFileError as err:  # empty, truncated, not a checkpoint
        raise ValueError(str(err)) from None


def release_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The release's ``state_dict`` without the DDP ``module.`` prefix.

    Raises:
        ValueError: if ``checkpoint`` does not look like a TDN release
            checkpoint.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError('Expected a dict with a `state_dict` (a checkpoint '
                         'saved by MCG-NJU/TDN main.py), got a '
                         f'{type(checkpoint).__name__}.')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError('The checkpoint has no `state_dict` of tensors; '
                         f'its keys are {sorted(checkpoint)[:10]}.')
    state = {
        (k[len('module.'):] if k.startswith('module.') else k): v
        for k, v in state.items()
    }
    if 'base_model.conv1_5.0.weight' not in state:
        raise ValueError(
            'Not a TDN release checkpoint: it has no '
            '`module.base_model.conv1_5.0.weight` (the S-TDM stem). Its '
            f'first keys are {list(state)[:5]}.')
    return state


def infer_release_depth(state: Dict[str, torch.Tensor]) -> int:
    """ResNet depth of a release state dict, from its ``layer3`` blocks."""
    indices = {
        int(m.group(1))
        for m in (re.match(r'^base_model\.layer3_bak\.(\d+)\.', k)
                  for k in state) if m
    }
    blocks = max(indices) + 1 if indices else 0
    if blocks not in RELEASE_DEPTHS:
        raise ValueError(
            f'The checkpoint has {blocks} blocks in layer3; the release has '
            'ResNet-50 (6) and ResNet-101 (23) only.')
    return RELEASE_DEPTHS[blocks]


def _head_source(state: Dict[str, torch.Tensor]) -> str:
    # ``new_fc`` when the release trained with dropout > 0 (always, in
    # its scripts); with dropout 0 its ``base_model.fc`` is the classifier.
    for prefix in ('new_fc', 'base_model.fc'):
        if f'{prefix}.weight' in state:
            return prefix
    raise ValueError('The checkpoint has no classifier (`new_fc.weight` or '
                     '`base_model.fc.weight`).')


def resolve_class_order(num_classes: int,
                        label_order: str = 'auto',
                        class_map: Optional[Sequence[int]] = None
                        ) -> Tuple[List[int], str]:
    """Which release class becomes each output class, and why.

    ``'auto'`` applies verified orders only: 400 classes are Kinetics-400
    and stay as stored (the release's order is MMAction2's); 174 classes
    must be told V1 or V2, whose MMAction2 orders differ; any other count
    keeps the release's order. The unverified third-party Kinetics map
    (``'kinetics400-third-party-map'``) is applied only when named.

    Args:
        num_classes (int): Classes of the checkpoint.
        label_order (str): ``'auto'``, ``'release'``, or a key of
            :data:`~.tdn_class_orders.LABEL_ORDERS` (``'sthv1'``,
            ``'sthv2'``, ``'kinetics400'``,
            ``'kinetics400-third-party-map'``).
        class_map (Sequence[int], optional): Explicit permutation; entry
            ``i`` is the release's index of output class ``i``. Overrides
            ``label_order``.

    Returns:
        tuple: the permutation and a sentence saying which order is
        written and why.
    """
    if class_map is not None:
        perm = check_permutation(class_map, num_classes)
        return perm, 'the order of the given class map (--class-map)'
    chosen = 'chosen'
    if label_order == 'auto':
        chosen = 'auto'
        if num_classes == 400:
            label_order = 'kinetics400'
        elif num_classes == 174:
            raise ValueError(
                'A 174-class checkpoint is Something-Something V1 or V2, '
                'whose MMAction2 class orders differ. Pass '
                '`--label-order sthv1` or `--label-order sthv2` (or '
                '`release` to keep the release\'s alphabetical order).')
        else:
            return list(range(num_classes)), (
                f"the release's order, unchanged (auto: {num_classes} "
                'classes is no dataset with a known remapping)')
    if label_order == 'release':
        return list(range(num_classes)), \
            "the release's order, unchanged (chosen)"
    if label_order not in LABEL_ORDERS:
        raise ValueError(f'Unknown label order {label_order!r}; use one of '
                         f"{['auto', 'release', *LABEL_ORDERS]}.")
    order = LABEL_ORDERS[label_order]
    if len(order.perm) != num_classes:
        raise ValueError(
            f'label order {label_order!r} has {len(order.perm)} classes but '
            f'the checkpoint has {num_classes}.')
    return list(order.perm), f'{order.description} ({chosen}: ' \
        f'{order.reason})'


def expected_recognizer_state(depth: int, num_classes: int,
                              ) -> Dict[str, torch.Tensor]:
    """State dict (keys and shapes) of ``tdn_r50.py``/``tdn_r101.py``'s
    recognizer (backbone and ``cls_head``) for this depth and classes."""
    from mmaction.registry import MODELS
    backbone = MODELS.build(dict(type='ResNetTDN', depth=depth))
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['cls_head.fc_cls.weight'] = torch.empty(num_classes,
                                                  backbone.feat_dim)
    state['cls_head.fc_cls.bias'] = torch.empty(num_classes)
    return state


def convert_release_state_dict(
    state: Dict[str, torch.Tensor],
    depth: Optional[int] = None,
    label_order: str = 'auto',
    class_map: Optional[Sequence[int]] = None,
) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Convert a release state dict (``module.`` stripped) to ours.

    Args:
        state (dict): From :func:`release_state_dict`.
        depth (int, optional): Expected depth; None infers it.
        label_order (str): See :func:`resolve_class_order`.
        class_map (Sequence[int], optional): See
            :func:`resolve_class_order`.

    Returns:
        tuple: the converted state dict (``backbone.*``, ``cls_head.*``)
        and a summary dict (depth, classes, folded biases, dropped keys,
        class order).

    Raises:
        ValueError: wrong depth, missing or unexpected keys, or shapes that
            do not match, all listed.
    """
    found_depth = infer_release_depth(state)
    if depth is not None and depth != found_depth:
        raise ValueError(
            f'The checkpoint is a ResNet-{found_depth} TDN (layer3 has '
            f'{[k for k, v in RELEASE_DEPTHS.items() if v == found_depth][0]}'
            f' blocks), but depth {depth} was requested.')
    head = _head_source(state)
    num_classes = state[f'{head}.weight'].shape[0]
    perm, order_description = resolve_class_order(num_classes, label_order,
                                                  class_map)
    expected = expected_recognizer_state(found_depth, num_classes)

    converted: Dict[str, torch.Tensor] = {}
    consumed = set()
    missing: List[str] = []
    mismatched: List[str] = []
    for key, like in expected.items():
        if key.startswith('cls_head.'):
            source = f'{head}.{key.rsplit(".", 1)[1]}'
        else:
            source = release_key(key[len('backbone.'):])
        if source is None or source not in state:
            if key.endswith('num_batches_tracked'):
                converted[key] = torch.zeros_like(like)
                continue
            missing.append(f'{source} (for {key})')
            continue
        value = state[source]
        consumed.add(source)
        if value.shape != like.shape:
            mismatched.append(f'{source}: {tuple(value.shape)}, expected '
                              f'{tuple(like.shape)} for {key}')
            continue
        converted[key] = value.detach().clone()

    folded = 0
    for key in list(converted):
        if not key.endswith('.conv.weight'):
            continue
        prefix = key[:-len('.conv.weight')]
        mean_key = f'{prefix}.bn.running_mean'
        bias_key = release_key(prefix[len('backbone.'):] +
                               '.conv.weight')[:-len('weight')] + 'bias'
        if bias_key in state and mean_key in converted:
            converted[mean_key] = fold_conv_bias(converted[mean_key],
                                                 state[bias_key])
            consumed.add(bias_key)
            folded += 1

    dropped = sorted(k for k in state if k.startswith(RELEASE_UNUSED_PREFIXES))
    unexpected = sorted(set(state) - consumed - set(dropped))
    if missing or mismatched or unexpected:
        lines = []
        for title, items in (('missing', missing),
                             ('shape mismatch', mismatched),
                             ('unexpected', unexpected)):
            if items:
                shown = items[:20]
                more = f' ... and {len(items) - 20} more' \
                    if len(items) > 20 else ''
                lines.append(f'{title} ({len(items)}):\n    ' +
                             '\n    '.join(shown) + more)
        raise ValueError(
            f'The checkpoint does not match a ResNet-{found_depth} TDN of '
            'the release (ResNetTDN default design):\n  ' +
            '\n  '.join(lines))

    for name in ('cls_head.fc_cls.weight', 'cls_head.fc_cls.bias'):
        converted[name] = converted[name][perm].contiguous()
    summary = dict(
        depth=found_depth,
        num_classes=num_classes,
        tensors=len(converted),
        folded_conv_biases=folded,
        dropped_keys=dropped,
        class_order=order_description)
    return converted, summary


def convert_release_checkpoint(path: str,
                               depth: Optional[int] = None,
                               label_order: str = 'auto',
                               class_map: Optional[Sequence[int]] = None
                               ) -> Tuple[dict, dict]:
    """Load and convert a release checkpoint file.

    Returns:
        tuple: ``{'state_dict': ..., 'meta': ...}`` ready for
        ``torch.save`` (and MMEngine's ``load_checkpoint``), and the
        summary of :func:`convert_release_state_dict` plus the release's
        ``epoch``/``arch``/``prec1`` when present.
    """
    checkpoint = load_release_checkpoint(path)
    state = release_state_dict(checkpoint)
    converted, summary = convert_release_state_dict(
        state, depth=depth, label_order=label_order, class_map=class_map)
    for field in ('arch', 'epoch', 'prec1', 'best_prec1'):
        value = checkpoint.get(field) if isinstance(checkpoint, dict) \
            else None
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float, str)):
            summary[f'release_{field}'] = value
    meta = dict(
        source='MCG-NJU/TDN official release checkpoint',
        converter='mmaction_tdx.models.utils.tdn_checkpoint',
        **{k: v for k, v in summary.items() if k != 'dropped_keys'})
    return dict(state_dict=converted, meta=meta), summary
