# TDN-ResNet101, 16 segments x 5 frames, Something-Something V2 (TDN
# Table 2); otherwise as the ResNet50 config.
_base_ = ['./tdn_imagenet-pretrained-r50_8xb8-5x1x16-60e_sthv2-rgb.py']

model = dict(
    backbone=dict(
        depth=101,
        # torchvision's ImageNet ResNet-101, as in _base_/models/tdn_r101.py
        pretrained=('https://download.pytorch.org/models/'
                    'resnet101-5d3b4d8f.pth')))
