# Fine-tuning a Kinetics-400 TDN on UCF101 / HMDB51 (TDN, Appendix A). The
# paper gives no schedule; this is the fine-tuning recipe of the TSM code
# base the release builds on (TSM README: lr 0.001 for a total batch of 64,
# 25 epochs, lr x0.1 at epochs 10 and 20, gradient clipping at 20, weight
# decay 5e-4). Parameter groups as the release's main.py: one lr and one
# weight decay for every parameter. (The release sets `fc_lr5` only when
# fine-tuning on the dataset the checkpoint was trained on, and even then
# SGD never applies its lr multipliers: there is no 5x classifier lr.)
max_epochs = 25
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.001, momentum=0.9, weight_decay=5e-4),
    clip_grad=dict(max_norm=20, norm_type=2))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[10, 20],
        gamma=0.1)
]
# lr 0.001 is for 64 videos per iteration (8 GPUs x 8).
auto_scale_lr = dict(enable=True, base_batch_size=64)
