# TDRL Table 4 "baseline", and the baseline rows of Tables 5 ("baseline"),
# 6 ("TM") and 7 ("0 x 10^-4"): ResNet50 with TEINet's temporal interaction
# module (TIM, the channel-wise temporal conv) in front of every block; no
# PEM, no TD loss.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(
    backbone=dict(enhancement_module=None, td_blocks=((), (), (), ())),
    cls_head=dict(loss_td=None))
