# Runtime shared by every config of mmaction_tdx: MMAction2's own runtime,
# plus the import that registers our modules and repairs the stack
# (see mmaction_tdx/compat).
_base_ = ['mmaction::_base_/default_runtime.py']

custom_imports = dict(imports=['mmaction_tdx'], allow_failed_imports=False)

# `load_from` (and resume, test) must fit the model: StrictLoadHook raises,
# listing missing/unexpected/shape-mismatched keys, instead of MMEngine's
# warning and a half-loaded model. To fine-tune with parts left as
# initialised, name them, e.g. `load_from_allow_mismatch = ['cls_head']`.
default_hooks = dict(strict_load=dict(type='StrictLoadHook'))
