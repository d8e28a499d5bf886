# TSM + TDRL's Temporal Diversity loss (mini-reproduction row "TSM + TD
# loss", docs/mini_reproduction.md): the quick-start TSM backbone as
# `ResNetTSMTD` (same network and parameter names), the TD loss (ratio 0.5,
# lambda 2e-4, as TDRL) on the shifted input of the last block of
# layer2-4. The head is TSNTDHead (TSNHead + `loss_td`) with TSMHead's
# settings: average over segments, then one linear layer (the same scores
# as TSMHead's linear layer, then average; dropout before the layer).
_base_ = ['./tsm_r18_1xb16-1x1x4-12e_synthetic-motion-rgb.py']

model = dict(
    type='SegmentRecognizer2D',
    backbone=dict(type='ResNetTSMTD', td_blocks=((), (-1, ), (-1, ), (-1, ))),
    cls_head=dict(
        _delete_=True,
        type='TSNTDHead',
        num_classes=10,
        in_channels=512,
        spatial_type='avg',
        consensus=dict(type='AvgConsensus', dim=1),
        dropout_ratio=0.2,
        init_std=0.001,
        average_clips='prob',
        loss_td=dict(
            type='TemporalDiversityLoss', ratio=0.5, loss_weight=2e-4)))
