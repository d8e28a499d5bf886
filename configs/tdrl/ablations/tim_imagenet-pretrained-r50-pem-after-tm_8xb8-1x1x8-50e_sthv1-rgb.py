# TDRL Table 6, "PEM A. TM": the TIM baseline with PEM after (instead of
# before) TIM in every block; no TD loss.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(
    backbone=dict(enhancement_position='after_tm', td_blocks=((), (), (), ())),
    cls_head=dict(loss_td=None))
