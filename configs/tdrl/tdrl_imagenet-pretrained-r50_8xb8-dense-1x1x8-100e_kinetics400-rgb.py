# TDRL-ResNet50, 8 frames, Kinetics-400 (TDRL Table 2, "Ours8f").
_base_ = [
    '../_base_/models/tdrl_r50.py', '../_base_/datasets/kinetics400_videos.py',
    '../_base_/schedules/tdrl_sgd-100e_kinetics400.py',
    '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        num_segments=8,
        # torchvision's ImageNet ResNet-50 by URL (the file
        # torchvision://resnet50 meant in 2020; no torchvision needed).
        pretrained=('https://download.pytorch.org/models/'
                    'resnet50-19c8e357.pth')),
    cls_head=dict(num_classes=400))

train_pipeline = [
    dict(type='DecordInit'),
    # Sec. 4.2: 8 frames uniformly from a random window of 64 consecutive
    # frames.
    dict(
        type='DenseSampleFrames',
        clip_len=1,
        frame_interval=1,
        num_clips=8,
        sample_range=64),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
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
# Validation during training: one window (the first 64 frames), centre
# crop.
val_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='DenseSampleFrames',
        clip_len=1,
        frame_interval=1,
        num_clips=8,
        sample_range=64,
        num_sample_positions=1,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
# 10 clips x 3 crops (Sec. 4.3, Table 2): 10 evenly spaced windows, shorter
# side 256, left, centre and right 256x256 crops.
test_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='DenseSampleFrames',
        clip_len=1,
        frame_interval=1,
        num_clips=8,
        sample_range=64,
        num_sample_positions=10,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='ThreeCrop', crop_size=256),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
