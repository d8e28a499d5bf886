# TDRL Table 5, "+100% TDLoss": the TIM baseline with the TD loss on
# 100 % of the channels; no PEM.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(
    backbone=dict(enhancement_module=None),
    cls_head=dict(loss_td=dict(ratio=1.0)))
