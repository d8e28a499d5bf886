# Something-Something V1 as MMAction2 prepares it
# (tools/data/sthv1/README.md): JPEG frames 00001.jpg, 00002.jpg, ... in
# data/sthv1/rawframes/<video id>/, lists "<video id> <frames> <label>".
# The pipelines depend on the model's sampling: every config sets
# train/val/test_pipeline and passes them to the dataloaders below.
# RawframeDataset that skips (and reports) broken samples, also in val/test
# (mmaction_tdx/datasets/robust_video_dataset.py); stops the run past
# max_broken_fraction (default 0.05).
dataset_type = 'RobustRawframeDataset'
data_root = 'data/sthv1/rawframes'
data_root_val = 'data/sthv1/rawframes'
ann_file_train = 'data/sthv1/sthv1_train_list_rawframes.txt'
ann_file_val = 'data/sthv1/sthv1_val_list_rawframes.txt'
ann_file_test = 'data/sthv1/sthv1_val_list_rawframes.txt'

train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(img=data_root),
        filename_tmpl='{:05}.jpg'))
val_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(img=data_root_val),
        filename_tmpl='{:05}.jpg',
        test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_test,
        data_prefix=dict(img=data_root_val),
        filename_tmpl='{:05}.jpg',
        test_mode=True))

val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
