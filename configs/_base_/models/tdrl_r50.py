# TDRL (Weng et al., ECCV 2020), the paper's final R50 model, T = 8:
# PEM before TIM in every block, TD loss (ratio 0.5, lambda 2e-4) after TIM
# in the last block of layer2-4. Ablations (Tables 3-7) are options of
# `ResNetTDRL` and of `loss_td`; see their docstrings.
# `custom_imports = dict(imports=['mmaction_tdx'])` comes with
# configs/_base_/default_runtime.py, which every config of ours inherits.

preprocess_cfg = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])

model = dict(
    type='SegmentRecognizer2D',
    backbone=dict(
        type='ResNetTDRL',
        # torchvision's ImageNet ResNet-50 file, fetched by URL: the
        # `torchvision://` scheme would need torchvision installed.
        pretrained=('https://download.pytorch.org/models/'
                    'resnet50-19c8e357.pth'),
        depth=50,
        num_segments=8,
        norm_eval=False,
        temporal_module=dict(
            type='ChannelwiseTemporalConv', init='shift', shift_div=8),
        enhancement_module=dict(
            type='ProgressiveEnhancementModule',
            reduction=16,
            memory_init='last_diff'),
        enhancement_position='before_tm',
        td_position='after_tm',
        td_blocks=((), (-1, ), (-1, ), (-1, ))),
    cls_head=dict(
        type='TSNTDHead',
        num_classes=400,
        in_channels=2048,
        spatial_type='avg',
        consensus=dict(type='AvgConsensus', dim=1),
        dropout_ratio=0.5,
        init_std=0.001,
        average_clips='prob',
        loss_td=dict(
            type='TemporalDiversityLoss', ratio=0.5, loss_weight=2e-4)),
    data_preprocessor=dict(type='ActionDataPreprocessor', **preprocess_cfg),
    train_cfg=None,
    test_cfg=None)
