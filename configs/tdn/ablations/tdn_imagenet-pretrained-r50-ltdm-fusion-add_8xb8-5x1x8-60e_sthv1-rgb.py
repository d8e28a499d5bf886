# TDN Table 1(c), row "F + G" (multi-scale, bidirectional): the L-TDM adds
# its difference representation to the features, without attention.
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(
    backbone=dict(long_term_tdm=dict(type='LongTermTDM', fusion='add')))
