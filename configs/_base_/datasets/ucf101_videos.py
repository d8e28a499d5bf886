# UCF101, split 1, as MMAction2 prepares it (tools/data/ucf101/README.md):
# videos in data/ucf101/videos/, lists "<video file> <label>". The paper
# reports the mean over the three official splits: for split 2 or 3, set
# the ann_file of the three dataloaders with --cfg-options, e.g.
#   train_dataloader.dataset.ann_file=data/ucf101/ucf101_train_split_2_videos.txt
#   val_dataloader.dataset.ann_file=data/ucf101/ucf101_val_split_2_videos.txt
#   test_dataloader.dataset.ann_file=data/ucf101/ucf101_val_split_2_videos.txt
# The pipelines depend on the model's sampling: every config sets
# train/val/test_pipeline and passes them to the dataloaders below.
# VideoDataset that skips (and reports) broken videos, also in val/test
# (mmaction_tdx/datasets/robust_video_dataset.py); stops the run past
# max_broken_fraction (default 0.05).
dataset_type = 'RobustVideoDataset'
data_root = 'data/ucf101/videos'
data_root_val = 'data/ucf101/videos'
split = 1  # official train/test split: 1, 2 or 3
ann_file_train = f'data/ucf101/ucf101_train_split_{split}_videos.txt'
ann_file_val = f'data/ucf101/ucf101_val_split_{split}_videos.txt'
ann_file_test = f'data/ucf101/ucf101_val_split_{split}_videos.txt'

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
