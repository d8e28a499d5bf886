# TDRL Table 4 "+PEM" and Table 6 "PEM B. TM": the TIM baseline with PEM
# before TIM in every block; no TD loss.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(
    backbone=dict(td_blocks=((), (), (), ())), cls_head=dict(loss_td=None))
