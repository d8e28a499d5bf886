# TDN Table 1(a), row "concat / avg": the S-TDM stacks the 5 frames
# themselves instead of their differences, and the L-TDM averages a segment
# with its aligned neighbour instead of subtracting it.
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(
    backbone=dict(
        short_term_tdm=dict(type='ShortTermTDM', input_mode='frames'),
        long_term_tdm=dict(type='LongTermTDM', temporal_operator='average')))
