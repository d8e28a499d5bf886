# TDN on Kinetics-400 (Sec. 4.1; the release's README): SGD, lr 0.02 for a
# total batch of 128 (8 GPUs x 16), momentum 0.9, weight decay 1e-4,
# gradient clipping at 20, 100 epochs, lr x0.1 at epochs 50, 75 and 90.
max_epochs = 100
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=5)
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
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=20, norm_type=2))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[50, 75, 90],
        gamma=0.1)
]
# lr 0.02 is for 128 videos per iteration (8 GPUs x 16): other totals scale
# it linearly.
auto_scale_lr = dict(enable=True, base_batch_size=128)
