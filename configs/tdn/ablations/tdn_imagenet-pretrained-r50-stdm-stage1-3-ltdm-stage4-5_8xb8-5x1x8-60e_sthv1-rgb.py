# TDN Table 1(d), row "Stage 1-3 / Stage 4-5": S-TDM fused after the stem,
# layer1 and layer2; L-TDM and temporal conv in every block of layer3-4.
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(
    backbone=dict(short_term_stages=(1, 2, 3), long_term_stages=(4, 5)))
