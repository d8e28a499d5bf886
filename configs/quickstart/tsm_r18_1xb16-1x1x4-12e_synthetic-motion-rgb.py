# TSM (ResNet-18, from scratch): temporal shift in every block.
_base_ = [
    'mmaction::_base_/models/tsm_r50.py',
    '../_base_/datasets/synthetic-motion_video.py',
    '../_base_/schedules/quickstart_cpu.py', '../_base_/quickstart_runtime.py'
]

model = dict(
    backbone=dict(
        depth=18,
        pretrained=None,
        pretrained2d=False,
        num_segments=4,
        norm_eval=False),
    cls_head=dict(
        num_classes=10, in_channels=512, num_segments=4, dropout_ratio=0.2))
