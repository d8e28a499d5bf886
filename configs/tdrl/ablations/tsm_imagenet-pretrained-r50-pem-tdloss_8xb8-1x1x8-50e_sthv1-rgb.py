# TDRL Table 3, "+PEM+TDLoss": TDRL with TSM's shift as the temporal
# module.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(backbone=dict(temporal_module=dict(_delete_=True, type='TemporalShift', shift_div=8)))
