# Test protocol of TDRL Table 1, "Ours 8f x 2": the model trained by
# tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv2-rgb.py
# tested on 2 clips x 3 crops. Train with that config; test its checkpoint
# with this one.
_base_ = ['./tdrl_imagenet-pretrained-r50_8xb8-1x1x8-50e_sthv2-rgb.py']

# 2 clips x 3 crops (Sec. 4.2 "Inference", Table 1 "x 2"): TSM's twice
# sampling (segment middles and segment starts), shorter side 256, left,
# centre and right 256x256 crops; the 6 views' scores are averaged.
test_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=1,
        frame_interval=1,
        num_clips=8,
        twice_sample=True,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='ThreeCrop', crop_size=256),
    dict(type='FormatShape', input_format='NCHW'),
    dict(type='PackActionInputs')
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
