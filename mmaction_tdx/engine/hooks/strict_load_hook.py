# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Refuse to train or test from a checkpoint that does not fit the model.

MMEngine loads ``load_from`` (and ``--resume``, and the checkpoint of
``tools/test.py`` / ``mim test``) with ``strict=False``: keys the model
lacks, keys the checkpoint lacks and tensors of another shape are only
logged as a warning, and the run goes on with a half-loaded model (e.g. an
R101 checkpoint in an R50 model, a TDN checkpoint in a TDRL model, a
174-class head in a 400-class model). :class:`StrictLoadHook`, enabled for
every config of ours by ``configs/_base_/default_runtime.py``, compares the
checkpoint with the model before MMEngine loads it and raises
:class:`CheckpointMismatchError`, listing the missing, unexpected and
shape-mismatched keys.

Fine-tuning from a checkpoint of another task says explicitly which parts
of the model stay as initialised::

    load_from = 'tdn_r50_8xb8-8x5x1-100e_kinetics400-rgb.pth'
    load_from_allow_mismatch = ['cls_head']   # new head for 101 classes

Each entry is a module name or key prefix (``'cls_head'`` covers
``cls_head.fc_cls.weight``) or an ``fnmatch`` pattern (``'*.enhancement'``
covers the PEMs TDRL adds to a TSN checkpoint). The keys it covers are
logged as a warning; ``['*']`` allows everything. The allowance applies to
training from ``load_from`` only: resuming and testing need the exact
architecture of the checkpoint.
"""
import fnmatch
import re
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import torch
from mmaction.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

ALLOW_MISMATCH_KEY = 'load_from_allow_mismatch'
# What MMEngine's ``Runner.load_checkpoint`` strips before loading.
REVISE_KEYS = ((r'^module\.', ''), )
# Listed per kind; the rest is counted.
MAX_LISTED = 12


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model it is loaded into."""


class StateDictMismatch:
    """Keys that differ between a model and a checkpoint.

    Attributes:
        missing (list[str]): In the model, not in the checkpoint.
        unexpected (list[str]): In the checkpoint, not in the model.
        shape (list[tuple]): ``(key, checkpoint shape, model shape)`` of the
            tensors both have with different shapes.
        all_keys (set[str]): The keys of both, to name whole modules.
    """

    def __init__(self,
                 missing: Sequence[str] = (),
                 unexpected: Sequence[str] = (),
                 shape: Sequence[Tuple[str, tuple, tuple]] = (),
                 all_keys: Iterable[str] = ()) -> None:
        self.missing = sorted(missing, key=natural_order)
        self.unexpected = sorted(unexpected, key=natural_order)
        self.shape = sorted(shape, key=lambda item: natural_order(item[0]))
        self.all_keys = set(all_keys)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shape)

    def split(self, patterns: Sequence[str]
              ) -> Tuple['StateDictMismatch', 'StateDictMismatch']:
        """Split into the part ``patterns`` allow and the rest."""
        allowed = StateDictMismatch(all_keys=self.all_keys)
        refused = StateDictMismatch(all_keys=self.all_keys)
        for kind in ('missing', 'unexpected', 'shape'):
            for item in getattr(self, kind):
                key = item[0] if kind == 'shape' else item
                target = allowed if key_matches(key, patterns) else refused
                getattr(target, kind).append(item)
        return allowed, refused

    def describe(self, limit: int = MAX_LISTED) -> str:
        """One block per kind of difference, each listing up to ``limit``
        entries; keys that make up a whole module are listed as the
        module (``backbone.stdm.* (60 keys)``)."""
        blocks = []
        kinds = (
            ('shape mismatch (checkpoint vs model)', len(self.shape), [
                f'{key}: {tuple(ckpt)} vs {tuple(model)}'
                for key, ckpt, model in self.shape
            ]),
            ('missing in the checkpoint', len(self.missing),
             collapse_keys(self.missing, self.all_keys)),
            ('unexpected (not in the model)', len(self.unexpected),
             collapse_keys(self.unexpected, self.all_keys)),
        )
        for title, count, lines in kinds:
            if not lines:
                continue
            more = len(lines) - limit
            shown = lines[:limit] + ([f'... and {more} more']
                                     if more > 0 else [])
            blocks.append(f'  {title}: {count} keys\n    ' +
                          '\n    '.join(shown))
        return '\n'.join(blocks)


def _prefixes(key: str) -> List[str]:
    parts = key.split('.')
    return ['.'.join(parts[:i]) for i in range(1, len(parts) + 1)]


def collapse_keys(keys: Sequence[str], all_keys: Iterable[str]) -> List[str]:
    """Name each group of ``keys`` by the largest module all of whose keys
    (among ``all_keys``) are in ``keys``: ``'<module>.* (<n> keys)'``;
    a key that is not a whole module alone stays as it is."""
    in_group: Dict[str, int] = {}
    for key in keys:
        for prefix in _prefixes(key):
            in_group[prefix] = in_group.get(prefix, 0) + 1
    in_all: Dict[str, int] = {}
    listed = set(keys)
    for key in set(all_keys) | listed:
        if key not in listed and key.endswith('num_batches_tracked'):
            continue  # never reported (see compare_state_dicts)
        for prefix in _prefixes(key):
            if prefix in in_group:
                in_all[prefix] = in_all.get(prefix, 0) + 1
    lines, seen = [], set()
    for key in sorted(keys, key=natural_order):
        whole = next(p for p in _prefixes(key) if in_group[p] == in_all[p]
                     or p == key)
        if whole in seen:
            continue
        seen.add(whole)
        lines.append(key if in_group[whole] == 1 else
                     f'{whole}.* ({in_group[whole]} keys)')
    return lines


def natural_order(key: str) -> list:
    """Sort key putting ``layer3.6`` before ``layer3.10``."""
    return [(0, int(part), '') if part.isdigit() else (1, 0, part)
            for part in key.split('.')]


def key_matches(key: str, patterns: Iterable[str]) -> bool:
    """Whether ``key`` is covered by a module name / prefix or an
    ``fnmatch`` pattern in ``patterns``."""
    return any(
        fnmatch.fnmatchcase(key, pattern)
        or fnmatch.fnmatchcase(key, pattern + '.*') for pattern in patterns)


def checkpoint_state_dict(checkpoint: Mapping) -> Dict[str, torch.Tensor]:
    """The state dict MMEngine would load from ``checkpoint`` (its
    ``state_dict`` entry, or the checkpoint itself, with ``module.``
    stripped)."""
    state = checkpoint.get('state_dict', checkpoint)
    revised = {}
    for key, value in state.items():
        for pattern, replacement in REVISE_KEYS:
            key = re.sub(pattern, replacement, key)
        revised[key] = value
    return revised


def compare_state_dicts(model_state: Mapping[str, torch.Tensor],
                        checkpoint_state: Mapping[str, object]
                        ) -> StateDictMismatch:
    """Compare keys and tensor shapes, as ``load_state_dict`` would.

    A missing ``num_batches_tracked`` is not reported: checkpoints older
    than PyTorch 0.4.1 lack it and MMEngine ignores it too.
    """
    missing = [
        key for key in model_state if key not in checkpoint_state
        and not key.endswith('num_batches_tracked')
    ]
    unexpected = [key for key in checkpoint_state if key not in model_state]
    shape = []
    for key, tensor in model_state.items():
        value = checkpoint_state.get(key)
        if isinstance(value, torch.Tensor) and value.shape != tensor.shape:
            shape.append((key, tuple(value.shape), tuple(tensor.shape)))
    return StateDictMismatch(missing, unexpected, shape,
                             set(model_state) | set(checkpoint_state))


def allowed_patterns(cfg) -> List[str]:
    """``load_from_allow_mismatch`` of a config, checked."""
    value = cfg.get(ALLOW_MISMATCH_KEY, None) if cfg is not None else None
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, str) and v for v in value):
        raise TypeError(
            f'`{ALLOW_MISMATCH_KEY}` must be a list of module names or key '
            f"patterns, e.g. ['cls_head'], got {value!r}.")
    return list(value)


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Raise if a loaded checkpoint does not fit the model.

    Runs in ``after_load_checkpoint``, which MMEngine calls for
    ``load_from``, resuming and testing, before the weights are copied
    into the model; so nothing trains or is evaluated on a half-loaded
    model. See the module docstring for ``load_from_allow_mismatch``.

    Enabled in ``configs/_base_/default_runtime.py``::

        default_hooks = dict(strict_load=dict(type='StrictLoadHook'))
    """

    # After hooks that edit the checkpoint on load (e.g. EMAHook).
    priority = 'VERY_LOW'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not isinstance(checkpoint, Mapping):
            return
        state = checkpoint_state_dict(checkpoint)
        if not isinstance(state, Mapping):
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        mismatch = compare_state_dicts(model.state_dict(), state)
        patterns = allowed_patterns(runner.cfg)
        resuming = bool(runner.cfg.get('resume', False))
        fine_tuning = self._is_training(runner) and not resuming
        if fine_tuning:
            allowed, refused = mismatch.split(patterns)
        else:
            allowed, refused = StateDictMismatch(), mismatch
        source = runner.cfg.get('load_from') or (
            f'the latest checkpoint in {runner.work_dir}')
        if allowed:
            runner.logger.warning(
                f'The checkpoint {source} does not fit the model where '
                f'`{ALLOW_MISMATCH_KEY}={patterns}` allows it; these parts '
                'keep their initial weights:\n' + allowed.describe())
        if refused:
            raise CheckpointMismatchError(
                self._refusal(source, refused, patterns, fine_tuning,
                              resuming))

    @staticmethod
    def _is_training(runner) -> bool:
        # ``Runner.train`` builds the train loop before loading the
        # checkpoint; ``Runner.test``/``val`` leave it a config (or None).
        # The ``train_loop`` property would build it, so it is not used.
        # Unknown means not training: the stricter check.
        from mmengine.runner import BaseLoop
        return isinstance(getattr(runner, '_train_loop', None), BaseLoop)

    @staticmethod
    def _refusal(source: str, refused: StateDictMismatch,
                 patterns: List[str], fine_tuning: bool,
                 resuming: bool) -> str:
        head = (f'The checkpoint {source} does not fit the model (another '
                'depth, backbone, module design or number of classes?), so '
                'the model would start half-loaded:\n' + refused.describe())
        if fine_tuning:
            advice = (
                'Use a checkpoint of this architecture, or, to fine-tune '
                'with some parts left as initialised (e.g. a new head for '
                'another number of classes), name them in the config: '
                f"`{ALLOW_MISMATCH_KEY} = ['cls_head']` (module names, key "
                'prefixes or fnmatch patterns; currently '
                f'{patterns or "not set"}).')
        elif resuming:
            advice = ('Resuming needs the checkpoint of this very '
                      'configuration: check `--resume`/`load_from` and the '
                      'work_dir, or start a new run with `load_from`.')
        else:
            advice = ('Testing needs the checkpoint of this very '
                      'architecture: pass the checkpoint trained with this '
                      'config, or the config the checkpoint was trained '
                      'with.')
        return f'{head}\n{advice}'
