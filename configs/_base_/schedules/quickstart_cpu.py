# A short from-scratch schedule for the quick-start models on a CPU.
max_epochs = 12
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=1,
    val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=20, norm_type=2))
# A linear warm-up over the first epoch (per iteration, from 0.1 x lr),
# then a cosine decay to eta_min at the end of training: MMEngine's LinearLR
# (end=1) + CosineAnnealingLR (begin=1, end=12, T_max=11) as one scheduler
# whose end follows train_cfg.max_epochs (unset `end`: MMEngine takes
# max_epochs), so `--cfg-options train_cfg.max_epochs=N` keeps the shape
# for any N (N=1: the warm-up only).
param_scheduler = [
    dict(
        type='WarmupCosineLR',
        warmup=1,
        start_factor=0.1,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        convert_to_iter_based=True)
]
# The quick-start batch size; linear scaling applies to other totals.
auto_scale_lr = dict(enable=False, base_batch_size=16)
