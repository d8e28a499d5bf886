# TDRL Table 3, "baseline": TSM-ResNet50 (the temporal shift in front of
# every block), no PEM, no TD loss; TDRL's schedule.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(
    backbone=dict(
        temporal_module=dict(_delete_=True, type='TemporalShift', shift_div=8),
        enhancement_module=None,
        td_blocks=((), (), (), ())),
    cls_head=dict(loss_td=None))
