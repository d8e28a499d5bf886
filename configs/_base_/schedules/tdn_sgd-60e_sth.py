# TDN on Something-Something V1/V2 (Sec. 4.1; the release's
# tools/train_something.sh and README): SGD, lr 0.01 for a total batch of 64
# (8 GPUs x 8), momentum 0.9, weight decay 5e-4, gradient clipping at 20,
# 60 epochs, lr x0.1 at epochs 30, 45 and 55.
max_epochs = 60
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# Parameter groups as the release: its ops/models.py computes lr_mult /
# decay_mult per group (get_optim_policies), but main.py hands the groups
# to torch.optim.SGD with one lr and one weight decay and nothing applies
# the multipliers, so every parameter (BN and biases included) trains with
# the same lr and weight decay. MMEngine's default constructor does the
# same. TSM-style groups (no decay on BN, 2x lr on biases) are a named
# option: add '../_base_/schedules/tdn_tsm-param-groups.py' to _base_.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
    clip_grad=dict(max_norm=20, norm_type=2))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[30, 45, 55],
        gamma=0.1)
]
# lr 0.01 is for 64 videos per iteration (8 GPUs x 8): other totals scale
# it linearly (e.g. 1 GPU x 8 -> 0.00125).
auto_scale_lr = dict(enable=True, base_batch_size=64)
