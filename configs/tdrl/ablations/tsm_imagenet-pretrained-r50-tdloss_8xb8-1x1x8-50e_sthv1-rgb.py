# TDRL Table 3, "+TDLoss": TSM-ResNet50 with the TD loss after the shift
# in the last block of layer2-4; no PEM.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(
    backbone=dict(
        temporal_module=dict(_delete_=True, type='TemporalShift', shift_div=8),
        enhancement_module=None))
