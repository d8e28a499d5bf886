# TDN-ResNet50, 16 segments x 5 frames, Something-Something V2 (TDN
# Table 2). With 16 segments the release fuses the S-TDM as
# 0.75 F + 0.25 H (ShortTermTDM's default rule).
_base_ = ['./tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv2-rgb.py']

num_segments = 16
clip_len = 5
model = dict(
    backbone=dict(num_segments=num_segments),
    cls_head=dict(segments_per_view=num_segments))

sthv2_flip_label_map = {86: 87, 87: 86, 93: 94, 94: 93, 166: 167, 167: 166}
train_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=1,
        num_clips=num_segments,
        out_of_bound_opt='repeat_last'),
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=(256, 320)),
    dict(
        type='MultiScaleCrop',
        input_size=224,
        scales=(1, 0.875, 0.75, 0.66),
        random_crop=False,
        max_wh_scale_gap=1,
        num_fixed_crops=13),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5, flip_label_map=sthv2_flip_label_map),
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
test_pipeline = val_pipeline

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
