# TDRL with a ResNet-101 backbone; otherwise as tdrl_r50.py.
_base_ = ['./tdrl_r50.py']

model = dict(
    backbone=dict(
        pretrained=('https://download.pytorch.org/models/'
                    'resnet101-5d3b4d8f.pth'),
        depth=101))
