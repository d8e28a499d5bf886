# TDN (ResNet-18, from scratch): S-TDM on RGB differences of 5 consecutive
# frames per segment in stages 1-2, L-TDM + temporal conv in stages 3-5.
_base_ = [
    '../_base_/models/tdn_r50.py',
    '../_base_/datasets/synthetic-motion_video.py',
    '../_base_/schedules/quickstart_cpu.py', '../_base_/quickstart_runtime.py'
]

num_segments = 4
clip_len = 5  # TDN's input contract: 5 consecutive frames per segment
input_size = 48

model = dict(
    backbone=dict(
        depth=18, pretrained=None, num_segments=num_segments),
    cls_head=dict(num_classes=10, in_channels=512, dropout_ratio=0.2))

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
    # as the dataset base: a training crop's scale, resized as in training
    dict(type='CenterCrop', crop_size=56),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=False),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
# MMAction2's inference_recognizer / demo.py read `test_pipeline`: without
# this line they would get the dataset base's 1-frame sampling.
test_pipeline = val_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
