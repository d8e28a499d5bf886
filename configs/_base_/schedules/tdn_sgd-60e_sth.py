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

# TSMOptimWrapperConstructor reproduces the release's parameter groups
# (ops/models.py, get_optim_policies): biases at 2x lr without weight
# decay, BN without weight decay.
optim_wrapper = dict(
    constructor='TSMOptimWrapperConstructor',
    paramwise_cfg=dict(fc_lr5=False),
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
