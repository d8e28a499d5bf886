# TDN-ResNet50, 16 segments x 5 frames, fine-tuned on UCF101 split 1 from
# the Kinetics-400 TDN of the same shape (TDN Table 4 / Appendix A; the
# paper reports the mean of the three splits: see the dataset base for
# splits 2 and 3).
_base_ = [
    '../_base_/models/tdn_r50.py', '../_base_/datasets/ucf101_videos.py',
    '../_base_/schedules/tdn_sgd-25e_finetune.py',
    '../_base_/default_runtime.py'
]

num_segments = 16
clip_len = 5  # S-TDM: the centre frame and its 4 neighbours per segment
model = dict(
    # Every weight but the classifier comes from load_from.
    backbone=dict(num_segments=num_segments, pretrained=None),
    # The TSM fine-tuning recipe's dropout (see the schedule); the release's
    # test protocol: a softmax per test view, then the mean.
    cls_head=dict(
        type='ViewConsensusTSNHead',
        num_classes=101,
        dropout_ratio=0.8,
        segments_per_view=num_segments))

# The Kinetics-400 TDN-R50 16x5 checkpoint: either the release's, converted
# with
#   python tools/convert/tdn_official.py <release .pth.tar> \
#       checkpoints/tdn_imagenet-pretrained-r50_8xb16-5x1x16-100e_kinetics400-rgb.pth
# or your own training of that config.
load_from = ('checkpoints/'
             'tdn_imagenet-pretrained-r50_8xb16-5x1x16-100e_kinetics400-rgb.pth')
# The 400-class classifier does not fit 101 classes: it stays as
# initialised (StrictLoadHook refuses any other mismatch).
load_from_allow_mismatch = ['cls_head']

train_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=clip_len,
        frame_interval=1,
        num_clips=num_segments,
        out_of_bound_opt='repeat_last'),
    dict(type='DecordDecode'),
    dict(type='RandomRescale', scale_range=(256, 320)),
    dict(
        type='MultiScaleCrop',
        input_size=224,
        scales=(1, 0.875, 0.75, 0.66),
        random_crop=False,
        max_wh_scale_gap=1,
        num_fixed_crops=13),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SegmentSampleFrames',
        clip_len=clip_len,
        num_clips=num_segments,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
# The paper does not state the test views here; we test as on Kinetics-400
# (10 clips x 3 crops of 256x256).
test_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SegmentSampleFrames',
        clip_len=clip_len,
        num_clips=num_segments,
        num_views=10,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='ThreeCrop', crop_size=256),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]

train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, dataset=dict(pipeline=val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
