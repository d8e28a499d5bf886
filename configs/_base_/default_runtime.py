# Runtime shared by every config of mmaction_tdx: MMAction2's own runtime,
# plus the import that registers our modules and repairs the stack
# (see mmaction_tdx/compat) and our checks. The base to inherit for your
# own experiments (docs/own_dataset.md): it makes no machine or schedule
# choice. MMAction2's defaults stay: the NCCL backend (on a machine
# without CUDA, mmaction_tdx.compat.mmengine_cpu_dist uses gloo and logs
# it), a checkpoint every epoch with all of them kept (any epoch can be
# resumed), the best one by validation accuracy. The quick start's CPU
# settings are in ./quickstart_runtime.py.
_base_ = ['mmaction::_base_/default_runtime.py']

custom_imports = dict(imports=['mmaction_tdx'], allow_failed_imports=False)

default_hooks = dict(
    # MMAction2's checkpoint settings, saved so that no interruption loses
    # the last resumable checkpoint (atomic writes, old files removed only
    # after a save), and resume-time paths trusted only inside the work
    # dir (mmaction_tdx/engine/hooks/safe_checkpoint_hook.py).
    checkpoint=dict(type='SafeCheckpointHook'),
    # Before the first iteration: the pipelines' SampleFrames must give
    # what the backbone reads (num_segments x frames_per_segment).
    sampling_check=dict(type='SamplingCheckHook'),
    # `load_from` (and resume, test) must fit the model: raise, listing the
    # missing/unexpected/shape-mismatched keys, instead of MMEngine's
    # warning and a half-loaded model. To fine-tune with parts left as
    # initialised, name them: `load_from_allow_mismatch = ['cls_head']`.
    strict_load=dict(type='StrictLoadHook'),
    # Before the first iteration: every param_scheduler must fit
    # train_cfg's length (an edited max_epochs leaves explicit `end`,
    # `T_max` and `milestones` behind); stops naming the values to set.
    schedule_check=dict(type='ScheduleCheckHook'),
    # With the Robust*Dataset types of configs/_base_/datasets: report the
    # broken samples skipped in each epoch, stop past max_broken_fraction,
    # and leave broken val/test videos out of the metrics, saying how many.
    # A default hook (not a custom one) so that a config's own
    # `custom_hooks` list cannot drop it.
    broken_sample_report=dict(type='BrokenSampleReportHook'))
