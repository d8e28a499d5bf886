# TDN Table 1(e), L-TDM only, and Table 5 "L-TDM": the baseline (temporal
# conv in stages 3-5) plus the L-TDM before it in those blocks; no S-TDM,
# so 8 segments x 1 frame.
_base_ = ['./tdn_imagenet-pretrained-r50-no-tdm_8xb8-1x1x8-60e_sthv1-rgb.py']

model = dict(backbone=dict(long_term_tdm=dict(_delete_=True, type='LongTermTDM')))
