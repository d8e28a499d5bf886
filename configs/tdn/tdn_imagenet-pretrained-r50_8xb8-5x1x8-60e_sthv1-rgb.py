# TDN-ResNet50, 8 segments x 5 frames, Something-Something V1 (TDN Table 2;
# also the TDN row of the ablations in Table 1 and Table 5). The model is
# the official release; its variants are in ./ablations.
_base_ = [
    '../_base_/models/tdn_r50.py', '../_base_/datasets/sthv1_rawframes.py',
    '../_base_/schedules/tdn_sgd-60e_sth.py', '../_base_/default_runtime.py'
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
        num_classes=174,
        segments_per_view=num_segments))

# MMAction2's label order; the same pairs as
# mmaction_tdx.datasets.STHV1_FLIP_LABEL_MAP.
sthv1_flip_label_map = {2: 4, 4: 2, 30: 41, 41: 30, 52: 66, 66: 52}
train_pipeline = [
    # Release sampling: a random 5-frame snippet in each of 8 segments.
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=1,
        num_clips=num_segments,
        out_of_bound_opt='repeat_last'),
    dict(type='RawFrameDecode'),
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
    # The release flips Something-Something with left/right label swap.
    dict(type='Flip', flip_ratio=0.5, flip_label_map=sthv1_flip_label_map),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
# 1 clip x centre crop (Sec. 4.3, Table 2): the snippet in the middle of
# each segment, shorter side 256, centre 224x224.
val_pipeline = [
    dict(
        type='SegmentSampleFrames',
        clip_len=clip_len,
        num_clips=num_segments,
        test_mode=True),
    dict(type='RawFrameDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
test_pipeline = val_pipeline

train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
