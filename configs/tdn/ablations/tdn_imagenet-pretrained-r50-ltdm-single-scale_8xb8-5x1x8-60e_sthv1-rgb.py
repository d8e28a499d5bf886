# TDN Table 1(c), row "F + F (.) G", bidirectional, not multi-scale: the
# difference goes straight to the expanding conv.
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(
    backbone=dict(long_term_tdm=dict(type='LongTermTDM', multi_scale=False)))
