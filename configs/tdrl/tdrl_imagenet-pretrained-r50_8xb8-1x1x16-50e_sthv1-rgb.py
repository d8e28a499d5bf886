# TDRL-ResNet50, 16 frames, Something-Something V1 (TDRL Table 1,
# "Ours 16f").
_base_ = ['./tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(backbone=dict(num_segments=16))

# MMAction2's label order; the same pairs as
# mmaction_tdx.datasets.STHV1_FLIP_LABEL_MAP.
sthv1_flip_label_map = {2: 4, 4: 2, 30: 41, 41: 30, 52: 66, 66: 52}
train_pipeline = [
    # Sec. 4.2: 16 frames uniformly over the whole video.
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=16),
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
        num_clips=16,
        test_mode=True),
    dict(type='RawFrameDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
test_pipeline = val_pipeline

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
