# TDRL-ResNet50, 8 frames, Something-Something V1 (TDRL Table 1, "Ours
# 8f"): PEM before TIM in every block, TD loss (50 % of the channels,
# lambda 2e-4) after TIM in the last block of layer2-4.
# Also the "+PEM+TDLoss" row of Table 4 (and the full model of the
# ablations in ./ablations).
_base_ = [
    '../_base_/models/tdrl_r50.py', '../_base_/datasets/sthv1_rawframes.py',
    '../_base_/schedules/tdrl_sgd-50e_sth.py', '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        num_segments=8,
        # torchvision's ImageNet ResNet-50 by URL (the file
        # torchvision://resnet50 meant in 2020; no torchvision needed).
        pretrained=('https://download.pytorch.org/models/'
                    'resnet50-19c8e357.pth')),
    cls_head=dict(num_classes=174))

# MMAction2's label order; the same pairs as
# mmaction_tdx.datasets.STHV1_FLIP_LABEL_MAP.
sthv1_flip_label_map = {2: 4, 4: 2, 30: 41, 41: 30, 52: 66, 66: 52}
train_pipeline = [
    # Sec. 4.2: 8 frames uniformly over the whole video.
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=8),
    dict(type='RawFrameDecode'),
    # Sec. 4.2: shorter side 256, a centre patch with scale jittering,
    # resized to 224x224.
    dict(type='Resize', scale=(-1, 256)),
    dict(
        type='MultiScaleCrop',
        input_size=224,
        scales=(1, 0.875, 0.75, 0.66),
        random_crop=False,
        max_wh_scale_gap=1,
        num_fixed_crops=13),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    # A flip swaps the left/right classes.
    dict(type='Flip', flip_ratio=0.5, flip_label_map=sthv1_flip_label_map),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
# Single clip, centre crop (Sec. 4.2 "Inference").
val_pipeline = [
    dict(
        type='SampleFrames',
        clip_len=1,
        frame_interval=1,
        num_clips=8,
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
