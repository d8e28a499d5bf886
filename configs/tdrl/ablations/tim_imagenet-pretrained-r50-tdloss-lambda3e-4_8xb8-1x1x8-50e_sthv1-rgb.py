# TDRL Table 7, "3 x 10^-4": the TIM baseline with the TD loss weighted
# by lambda = 3e-4; no PEM.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(
    backbone=dict(enhancement_module=None),
    cls_head=dict(loss_td=dict(loss_weight=3e-4)))
