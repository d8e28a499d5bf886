# TDRL Table 4, "+MEM": the TIM baseline with TEINet's motion enhanced
# module before TIM in every block (i.e. TEINet); no TD loss.
_base_ = ['../tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv1-rgb.py']

model = dict(
    backbone=dict(
        enhancement_module=dict(_delete_=True, type='MotionEnhancementModule'),
        td_blocks=((), (), (), ())),
    cls_head=dict(loss_td=None))
