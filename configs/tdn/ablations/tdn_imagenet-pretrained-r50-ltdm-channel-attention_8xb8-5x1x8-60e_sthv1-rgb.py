# TDN Table 1(c), row "F + F (.) G_channel" (bidirectional, not
# multi-scale): a TEA-like channel attention from the spatially averaged
# difference; multi-scale convolutions have nothing to do on a 1x1 map.
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(
    backbone=dict(
        long_term_tdm=dict(
            type='LongTermTDM',
            fusion='channel_attention',
            multi_scale=False)))
