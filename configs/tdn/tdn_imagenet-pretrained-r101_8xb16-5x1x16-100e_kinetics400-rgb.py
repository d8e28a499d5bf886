# TDN-ResNet101, 16 segments x 5 frames, Kinetics-400 (TDN Table 3);
# otherwise as the ResNet50 config.
_base_ = ['./tdn_imagenet-pretrained-r50_8xb16-5x1x16-100e_kinetics400-rgb.py']

model = dict(
    backbone=dict(
        depth=101,
        # torchvision's ImageNet ResNet-101, as in _base_/models/tdn_r101.py
        pretrained=('https://download.pytorch.org/models/'
                    'resnet101-5d3b4d8f.pth')))
