# TDN-ResNet50 (Wang et al., CVPR 2021): the official release's model.
# One view = num_segments x 5 frames: sample with
# SampleFrames(clip_len=5, frame_interval=1, num_clips=8) + FormatShape('NCHW')
# and override backbone.num_segments / cls_head.num_classes as needed
# (the release uses 174 classes on Something-Something V1/V2, 400 on
# Kinetics-400). Variants of Table 1 are options of the backbone and its
# modules, see mmaction_tdx.models.backbones.ResNetTDN.
# `custom_imports = dict(imports=['mmaction_tdx'])` comes with
# configs/_base_/default_runtime.py, which every config of ours inherits.

model = dict(
    type='SegmentRecognizer2D',
    backbone=dict(
        type='ResNetTDN',
        # torchvision's ImageNet ResNet-50: the release starts from the
        # file of the same name and hash (19c8e357) via Cadene's fbresnet50.
        pretrained=('https://download.pytorch.org/models/'
                    'resnet50-19c8e357.pth'),
        depth=50,
        num_segments=8,
        norm_eval=False),
    # TSNHead with the consensus per test view: each view (clip x crop) is
    # scored and average_clips='prob' averages the views' softmax, as the
    # release tests; segments_per_view is the backbone's num_segments.
    # With one view it is TSNHead.
    cls_head=dict(
        type='ViewConsensusTSNHead',
        num_classes=400,
        in_channels=2048,
        spatial_type='avg',
        consensus=dict(type='AvgConsensus', dim=1),
        dropout_ratio=0.5,
        init_std=0.001,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCHW'),
    train_cfg=None,
    test_cfg=None)
