# Something-Something V2 as MMAction2 prepares it
# (tools/data/sthv2/README.md): webm videos in data/sthv2/videos/, lists
# "<video file> <label>". The pipelines depend on the model's sampling:
# every config sets train/val/test_pipeline and passes them to the
# dataloaders below.
# VideoDataset that skips (and reports) broken videos, also in val/test
# (mmaction_tdx/datasets/robust_video_dataset.py); stops the run past
# max_broken_fraction (default 0.05).
dataset_type = 'RobustVideoDataset'
data_root = 'data/sthv2/videos'
data_root_val = 'data/sthv2/videos'
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'
ann_file_test = 'data/sthv2/sthv2_val_list_videos.txt'

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root)))
val_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=data_root_val),
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(video=data_root_val),
        test_mode=True))

val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
