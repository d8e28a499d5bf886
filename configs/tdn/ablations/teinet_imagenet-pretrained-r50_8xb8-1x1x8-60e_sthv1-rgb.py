# TDN Table 1(f), "TEINet": ResNet50 with TEINet's motion enhanced module
# (MEM) and temporal interaction module (TIM, the channel-wise temporal
# conv) in front of every block, which is ResNetTDRL without PEM and TD
# loss (TDRL Table 4 "+MEM"); 8 frames, trained with TDN's schedule.
_base_ = [
    '../../_base_/models/tdrl_r50.py', '../../_base_/datasets/sthv1_rawframes.py',
    '../../_base_/schedules/tdn_sgd-60e_sth.py',
    '../../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(
        num_segments=8,
        # torchvision's ImageNet ResNet-50 by URL (the file
        # torchvision://resnet50 meant in 2020; no torchvision needed).
        pretrained=('https://download.pytorch.org/models/'
                    'resnet50-19c8e357.pth'),
        enhancement_module=dict(_delete_=True, type='MotionEnhancementModule'),
        td_blocks=((), (), (), ())),
    cls_head=dict(num_classes=174, loss_td=None))

sthv1_flip_label_map = {2: 4, 4: 2, 30: 41, 41: 30, 52: 66, 66: 52}
train_pipeline = [
    dict(type='SampleFrames', clip_len=1, frame_interval=1, num_clips=8),
    dict(type='RawFrameDecode'),
    dict(type='RandomRescale', scale_range=(256, 320)),
    dict(
        type='MultiScaleCrop',
        input_size=224,
        scales=(1, 0.875, 0.75, 0.66),
        random_crop=False,
        max_wh_scale_gap=1,
        num_fixed_crops=13),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5, flip_label_map=sthv1_flip_label_map),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
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

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
