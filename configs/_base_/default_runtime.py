# Runtime shared by every config of mmaction_tdx: MMAction2's own runtime,
# plus the import that registers our modules and repairs the stack
# (see mmaction_tdx/compat).
_base_ = ['mmaction::_base_/default_runtime.py']

custom_imports = dict(imports=['mmaction_tdx'], allow_failed_imports=False)

default_hooks = dict(
    # Before the first iteration: the pipelines' SampleFrames must give
    # what the backbone reads (num_segments x frames_per_segment).
    sampling_check=dict(type='SamplingCheckHook'),
    # `load_from` (and resume, test) must fit the model: raise, listing the
    # missing/unexpected/shape-mismatched keys, instead of MMEngine's
    # warning and a half-loaded model. To fine-tune with parts left as
    # initialised, name them: `load_from_allow_mismatch = ['cls_head']`.
    strict_load=dict(type='StrictLoadHook'),
    # With the Robust*Dataset types of configs/_base_/datasets: report the
    # broken samples skipped in each epoch, stop past max_broken_fraction,
    # and leave broken val/test videos out of the metrics, saying how many.
    # A default hook (not a custom one) so that a config's own
    # `custom_hooks` list cannot drop it.
    broken_sample_report=dict(type='BrokenSampleReportHook'))
