# TDN Table 1(e), S-TDM at Conv1 only: the baseline (temporal conv in
# stages 3-5) plus the S-TDM fused after the stem; no L-TDM.
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(backbone=dict(short_term_stages=(1, ), long_term_tdm=None))
