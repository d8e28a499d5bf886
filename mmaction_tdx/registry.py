# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Registries of the ``mmaction_tdx`` scope: children of MMAction2's.

A config whose ``_base_`` is loaded through the package scope, e.g.
``_base_ = ['mmaction_tdx::_base_/models/tdn_r50.py']``, gets
``_scope_='mmaction_tdx'`` in its ``type`` dicts when the base sets no
``default_scope`` (our model-only bases do not). MMEngine then imports
``mmaction_tdx.registry`` and looks for a registry of that scope; without
one it fell back to the registry ``build`` was called on, and e.g.
``ActionDataPreprocessor`` (built through MMEngine's root ``MODELS``) was
not found. These children are empty: every lookup falls through to
MMAction2's registries, where our modules are registered.
"""
from mmaction import registry as mmaction_registry
from mmengine.registry import Registry

SCOPE = 'mmaction_tdx'
_NAMES = ('RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS',
          'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
          'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
          'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS',
          'EVALUATOR', 'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS',
          'LOG_PROCESSORS', 'INFERENCERS', 'FUNCTION')


def _child(name: str) -> Registry:
    parent = getattr(mmaction_registry, name)
    # `locations`: importing the package registers everything of ours (in
    # MMAction2's registries); without it MMEngine would look for
    # `mmaction_tdx.utils.register_all_modules`.
    return Registry(
        parent.name, parent=parent, scope=SCOPE, locations=[SCOPE])


RUNNERS = _child('RUNNERS')
RUNNER_CONSTRUCTORS = _child('RUNNER_CONSTRUCTORS')
LOOPS = _child('LOOPS')
HOOKS = _child('HOOKS')
DATASETS = _child('DATASETS')
DATA_SAMPLERS = _child('DATA_SAMPLERS')
TRANSFORMS = _child('TRANSFORMS')
MODELS = _child('MODELS')
MODEL_WRAPPERS = _child('MODEL_WRAPPERS')
WEIGHT_INITIALIZERS = _child('WEIGHT_INITIALIZERS')
OPTIMIZERS = _child('OPTIMIZERS')
OPTIM_WRAPPERS = _child('OPTIM_WRAPPERS')
OPTIM_WRAPPER_CONSTRUCTORS = _child('OPTIM_WRAPPER_CONSTRUCTORS')
PARAM_SCHEDULERS = _child('PARAM_SCHEDULERS')
METRICS = _child('METRICS')
EVALUATOR = _child('EVALUATOR')
TASK_UTILS = _child('TASK_UTILS')
VISUALIZERS = _child('VISUALIZERS')
VISBACKENDS = _child('VISBACKENDS')
LOG_PROCESSORS = _child('LOG_PROCESSORS')
INFERENCERS = _child('INFERENCERS')
FUNCTION = _child('FUNCTION')

__all__ = list(_NAMES)
