# TDN-ResNet50, 8 segments x 5 frames, Kinetics-400 (TDN Table 3). Tested
# with 10 clips x 3 crops of 256x256 (Sec. 4.3); validated during training
# with 1 clip x centre crop.
_base_ = [
    '../_base_/models/tdn_r50.py', '../_base_/datasets/kinetics400_videos.py',
    '../_base_/schedules/tdn_sgd-100e_kinetics400.py',
    '../_base_/default_runtime.py'
]

num_segments = 8
clip_len = 5  # S-TDM: the centre frame and its 4 neighbours per segment
# The release's test protocol: a softmax per test view (clip x crop), then
# the mean (ViewConsensusTSNHead; TSNHead would average the features of all
# views before its classifier).
model = dict(
    backbone=dict(num_segments=num_segments),
    cls_head=dict(
        type='ViewConsensusTSNHead',
        num_classes=400,
        segments_per_view=num_segments))

train_pipeline = [
    dict(type='DecordInit'),
    # Release sampling: a random 5-frame snippet in each of 8 segments.
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=1,
        num_clips=num_segments,
        out_of_bound_opt='repeat_last'),
    dict(type='DecordDecode'),
    # Sec. 4.1: shorter side in [256, 320]; the release's multi-scale crop.
    dict(type='RandomRescale', scale_range=(256, 320)),
    dict(
        type='MultiScaleCrop',
        input_size=224,
        scales=(1, 0.875, 0.75, 0.66),
        random_crop=False,
        max_wh_scale_gap=1,
        num_fixed_crops=13),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SegmentSampleFrames',
        clip_len=clip_len,
        num_clips=num_segments,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
# 10 clips x 3 crops (Sec. 4.3, Table 3): 10 segment samplings spread over
# each segment, shorter side 256, three 256x256 crops.
test_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SegmentSampleFrames',
        clip_len=clip_len,
        num_clips=num_segments,
        num_views=10,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='ThreeCrop', crop_size=256),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=16, dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
