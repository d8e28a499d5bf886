# TDRL (ResNet-18, from scratch): PEM before the channel-wise temporal conv
# (TIM) in every block, Temporal Diversity loss after TIM in the last block
# of layer2-4; `loss_td` appears beside `loss_cls` in the training log.
_base_ = [
    '../_base_/models/tdrl_r50.py',
    '../_base_/datasets/synthetic-motion_video.py',
    '../_base_/schedules/quickstart_cpu.py', '../_base_/quickstart_runtime.py'
]

model = dict(
    backbone=dict(depth=18, pretrained=None, num_segments=4),
    cls_head=dict(num_classes=10, in_channels=512, dropout_ratio=0.2))
