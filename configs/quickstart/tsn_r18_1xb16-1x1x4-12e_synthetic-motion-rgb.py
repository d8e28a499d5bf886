# TSN (ResNet-18, from scratch): frame-order-blind baseline. Within each
# reversal pair of the synthetic dataset it cannot beat chance.
_base_ = [
    'mmaction::_base_/models/tsn_r50.py',
    '../_base_/datasets/synthetic-motion_video.py',
    '../_base_/schedules/quickstart_cpu.py', '../_base_/quickstart_runtime.py'
]

model = dict(
    backbone=dict(depth=18, pretrained=None, norm_eval=False),
    cls_head=dict(num_classes=10, in_channels=512, dropout_ratio=0.2))
