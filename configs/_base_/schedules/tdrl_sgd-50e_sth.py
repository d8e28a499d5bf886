# TDRL on Something-Something V1/V2 (Sec. 4.2): SGD, lr 0.01, momentum 0.9,
# weight decay 1e-4, batch 64, 50 epochs, lr x0.1 at epochs 30, 40 and 45.
max_epochs = 50
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[30, 40, 45],
        gamma=0.1)
]
# lr 0.01 is for 64 videos per iteration (8 GPUs x 8): other totals scale
# it linearly.
auto_scale_lr = dict(enable=True, base_batch_size=64)
