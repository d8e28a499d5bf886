# TDRL Table 6, "TDLoss B. TM": the TIM baseline with the TD loss on the
# features before (instead of after) TIM; no PEM.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(
    backbone=dict(enhancement_module=None, td_position='before_tm'))
