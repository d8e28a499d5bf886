# TDN Table 1(e), S-TDM at Conv1 and Res2, and Table 5 "S-TDM": the
# baseline (temporal conv in stages 3-5) plus the S-TDM in stages 1-2; no
# L-TDM.
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(backbone=dict(long_term_tdm=None))
