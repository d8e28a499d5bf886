# The embedded synthetic, motion-defined dataset (tools/data/
# generate_synthetic_motion.py): 10 classes in 5 reversal pairs, 64x64 mp4.
# Sampling: `num_segments` segments of `clip_len` consecutive frames
# (TSN/TSM/TDRL: clip_len=1; TDN: clip_len=5, set in its config).
# VideoDataset that skips (and reports) broken videos, also in val/test
# (mmaction_tdx/datasets/robust_video_dataset.py).
dataset_type = 'RobustVideoDataset'
data_root = 'data/synthetic_motion'
ann_file_train = f'{data_root}/train_list.txt'
ann_file_val = f'{data_root}/val_list.txt'
num_classes = 10
num_segments = 4
clip_len = 1
input_size = 48

train_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=1,
        num_clips=num_segments,
        out_of_bound_opt='repeat_last'),
    dict(type='DecordDecode'),
    dict(
        type='MultiScaleCrop',
        input_size=input_size,
        scales=(1, 0.875),
        random_crop=False,
        max_wh_scale_gap=1),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    # No Flip: it would turn "moving right" into "moving left".
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=1,
        num_clips=num_segments,
        out_of_bound_opt='repeat_last',
        test_mode=True),
    dict(type='DecordDecode'),
    # A training crop's scale (0.875 of 64 px), resized as in training, so
    # that the object has the same size in training and testing.
    dict(type='CenterCrop', crop_size=56),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
test_pipeline = val_pipeline

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(video=f'{data_root}/videos'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(video=f'{data_root}/videos'),
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = val_dataloader

# Top-1/top-5, and the motion kind and direction within a reversal pair
# (the quick start's table; DirectionAccuracy's default pairs are this
# dataset's: labels 0/1, 2/3, ...).
val_evaluator = [dict(type='AccMetric'), dict(type='DirectionAccuracy')]
test_evaluator = val_evaluator
