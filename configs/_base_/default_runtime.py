# Runtime shared by every config of mmaction_tdx: MMAction2's own runtime,
# plus the import that registers our modules and repairs the stack
# (see mmaction_tdx/compat).
_base_ = ['mmaction::_base_/default_runtime.py']

custom_imports = dict(imports=['mmaction_tdx'], allow_failed_imports=False)
