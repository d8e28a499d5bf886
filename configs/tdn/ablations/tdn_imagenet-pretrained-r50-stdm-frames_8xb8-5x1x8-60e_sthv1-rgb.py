# TDN Table 1(a), row "concat / diff": the S-TDM stacks the 5 frames
# themselves instead of their differences.
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(
    backbone=dict(
        short_term_tdm=dict(type='ShortTermTDM', input_mode='frames')))
