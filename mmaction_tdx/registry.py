# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The ``mmaction_tdx`` scope: one child of each of MMAction2's registries.

Why they exist: a base loaded through the package scope, e.g.
``_base_ = ['mmaction_tdx::quickstart/<name>.py']``, gets
``_scope_='mmaction_tdx'`` on each of its outermost ``type`` dicts (model,
datasets, samplers, loops, hooks, optimizers, schedulers, metrics, ...;
mmengine 0.10.7 ``Config._dict_to_config_dict``, whatever the base's
``default_scope``). Building such a dict switches the default scope to
``mmaction_tdx`` for the build and everything built inside it (a model's
data preprocessor, a dataset's pipeline, a visualizer's backends):
MMEngine imports ``mmaction_tdx.registry`` and searches the registry tree
for a registry of that scope (``Registry.switch_scope_and_registry``).
Without one it warns "Failed to search registry with scope" and falls back
to the registry ``build`` was called on, often MMEngine's root, where
MMAction2's and our types are missing (``ActionDataPreprocessor``,
``VideoDataset``, ``AccMetric``, ...).

Why all of them (each of MMAction2's registries that has an MMEngine
parent; ``TOKENIZER`` has none, so its fallback is itself and works): any
registry can be named by a ``type`` dict of a config or built inside one,
so a subset would still fail (or warn) for the others. A one-iteration
training run of ``quickstart/tsn_r18...`` through the scope already
searches the hook, loop, dataset, transform, data sampler, optimizer,
parameter scheduler and metric trees; a model or visualizer of ours in the
base adds theirs. No smaller fix exists in mmengine 0.10.7: the stamp is
unconditional and the search matches a registry's ``scope`` exactly.
They hold nothing:
every lookup falls through to MMAction2's registries, where our modules
are registered. ``locations``: a lookup here imports ``mmaction_tdx``
(which registers everything), instead of MMEngine's fallback to a
``mmaction_tdx.utils.register_all_modules`` that does not exist.
"""
from mmaction import registry as mmaction_registry
from mmengine.registry import Registry

SCOPE = 'mmaction_tdx'
PARENT_SCOPE = 'mmaction'

#: Name in ``mmaction.registry`` (``'MODELS'``, ...) -> our child of it.
CHILDREN = {
    name: Registry(parent.name, parent=parent, scope=SCOPE,
                   locations=[SCOPE])
    for name, parent in vars(mmaction_registry).items()
    if isinstance(parent, Registry) and parent.scope == PARENT_SCOPE
    and parent.parent is not None
}
