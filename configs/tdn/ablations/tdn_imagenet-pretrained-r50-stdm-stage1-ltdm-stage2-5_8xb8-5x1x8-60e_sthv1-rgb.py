# TDN Table 1(d), row "Stage 1 / Stage 2-5": S-TDM fused after the stem
# only, L-TDM and temporal conv in every block of layer1-layer4.
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(
    backbone=dict(short_term_stages=(1, ), long_term_stages=(2, 3, 4, 5)))
