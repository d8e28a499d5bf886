# Optional TSM-style parameter groups for the TDN schedules (NOT what the
# release trains with; see tdn_sgd-60e_sth.py): MMAction2's
# TSMOptimWrapperConstructor puts BN and biases in their own groups, with
# no weight decay on BN and 2x lr without decay on biases. Use it after a
# TDN schedule in _base_, e.g.
#   _base_ = [..., '../_base_/schedules/tdn_sgd-60e_sth.py',
#             '../_base_/schedules/tdn_tsm-param-groups.py', ...]
# The optimizer, lr, decay and clipping come from the schedule.
optim_wrapper = dict(
    constructor='TSMOptimWrapperConstructor',
    paramwise_cfg=dict(fc_lr5=False))
