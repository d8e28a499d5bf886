# TDN Table 1(c), row "F + F (.) G", multi-scale, not bidirectional: only
# the forward difference (to the next segment).
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(
    backbone=dict(long_term_tdm=dict(type='LongTermTDM', bidirectional=False)))
