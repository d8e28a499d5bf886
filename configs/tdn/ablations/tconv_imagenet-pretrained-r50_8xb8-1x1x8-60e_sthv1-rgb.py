# TDN Table 1(f), "T-Conv": ResNet50 with TDN's temporal convolution (the
# channel-wise, shift-initialised temporal conv after conv1) in every block
# of layer1-layer4, no S-TDM/L-TDM; 8 frames; TDN's training schedule.
_base_ = ['./tdn_imagenet-pretrained-r50-no-tdm_8xb8-1x1x8-60e_sthv1-rgb.py']

model = dict(backbone=dict(long_term_stages=(2, 3, 4, 5)))
