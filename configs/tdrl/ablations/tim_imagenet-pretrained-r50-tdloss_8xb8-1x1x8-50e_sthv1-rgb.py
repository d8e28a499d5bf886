# TDRL Table 4 "+TDLoss", Table 5 "+50% TDLoss", Table 6 "TDLoss A. TM"
# and Table 7 "2 x 10^-4": the TIM baseline with the TD loss (50 % of the
# channels, lambda 2e-4) after TIM in the last block of layer2-4; no PEM.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(backbone=dict(enhancement_module=None))
