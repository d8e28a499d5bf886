# TDRL Table 3, "+PEM": TSM-ResNet50 with PEM before the shift in every
# block; no TD loss.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(
    backbone=dict(
        temporal_module=dict(_delete_=True, type='TemporalShift', shift_div=8),
        td_blocks=((), (), (), ())),
    cls_head=dict(loss_td=None))
