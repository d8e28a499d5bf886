# TDN + TDRL's Temporal Diversity loss, a combination neither paper tried
# (mini-reproduction, docs/mini_reproduction.md): the quick-start TDN, and
# the TD loss (ratio 0.5, lambda 2e-4, as TDRL) on the long-term unit's
# output (L-TDM, then temporal conv) of the last block of layer2-4, the
# positions TDRL uses. Not part of `make demo`'s four models.
_base_ = ['./tdn_r18_1xb16-5x1x4-12e_synthetic-motion-rgb.py']

model = dict(
    backbone=dict(td_blocks=((), (-1, ), (-1, ), (-1, ))),
    cls_head=dict(
        type='TSNTDHead',
        loss_td=dict(
            type='TemporalDiversityLoss', ratio=0.5, loss_weight=2e-4)))
