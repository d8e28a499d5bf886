# TDN Table 1(b), row "F (.) H": the S-TDM's motion features H enter the RGB
# features F as F * sigmoid(H) (an attention; the paper
# does not say how H becomes one, ShortTermTDM uses a sigmoid).
_base_ = ['../tdn_imagenet-pretrained-r50_8xb8-5x1x8-60e_sthv1-rgb.py']

model = dict(
    backbone=dict(
        short_term_tdm=dict(type='ShortTermTDM', fusion='mul')))
