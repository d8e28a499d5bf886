# TDRL with a ResNet-101 backbone; otherwise as tdrl_r50.py.
_base_ = ['./tdrl_r50.py']

model = dict(
    backbone=dict(pretrained='torchvision://resnet101', depth=101))
