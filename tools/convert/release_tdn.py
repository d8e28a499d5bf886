# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""TDN in the layout of the official release (Wang et al., CVPR 2021).

An independent, deliberately plain re-statement of the release's model
(``ops/tdn_net.py``, ``ops/base_module.py``, ``ops/models.py`` of
MCG-NJU/TDN) with its module names, so that its ``state_dict`` has the
release's keys: biased ResNet convs, ``conv1_temp``, ``conv1_5``,
``resnext_layer1``, ``layerN_bak`` with ``mse`` (L-TDM) and ``shift`` (the
channel-wise temporal ``Conv1d``), ``new_fc``. Written from the release's
code, not from this package, so it can check the package:

* the converter's round-trip test
  (``tests/test_tools/test_tdn_official.py``) saves its weights like the
  release, converts them with ``tools/convert/tdn_official.py`` and checks
  that our TDN scores like this model;
* ``tools/analysis/benchmark.py`` measures it as ``tdn_release``.

Input of :class:`ReleaseTSN`: ``(N*T, 15, H, W)``, the 5 RGB frames of each
segment stacked on channels, as the release feeds it; output
``(N, num_classes)``, the segment scores averaged.

Developer tooling, not part of the installed package (``import
mmaction_tdx`` never loads it).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['ReleaseMSE', 'ReleaseShift', 'ReleaseBottleneck', 'ReleaseBase',
           'ReleaseTSN']


class ReleaseMSE(nn.Module):
    """L-TDM: bidirectional, multi-scale, segment by segment."""

    def __init__(self, channels, num_segments, dec2020_quirk=False):
        super().__init__()
        r = channels // 16
        self.num_segments = num_segments
        self.dec2020_quirk = dec2020_quirk
        self.conv1 = nn.Conv2d(channels, r, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(r)
        self.conv2 = nn.Conv2d(r, r, 3, padding=1, groups=r, bias=False)
        self.conv3 = nn.Conv2d(r, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.conv3_smallscale2 = nn.Conv2d(r, r, 3, padding=1, bias=False)
        self.bn3_smallscale2 = nn.BatchNorm2d(r)
        self.conv3_smallscale4 = nn.Conv2d(r, r, 3, padding=1, bias=False)
        self.bn3_smallscale4 = nn.BatchNorm2d(r)

    def forward(self, x):
        t = self.num_segments
        feat = self.bn1(self.conv1(x))
        smooth = self.conv2(feat)
        feat = feat.view(-1, t, *feat.shape[1:])
        smooth = smooth.view(-1, t, *smooth.shape[1:])
        zero = torch.zeros_like(feat[:, 0])
        forward = torch.stack([
            smooth[:, i + 1] - feat[:, i] if i < t - 1 else zero
            for i in range(t)
        ], 1).flatten(0, 1)
        backward = torch.stack([
            smooth[:, i - 1] - feat[:, i] if i > 0 else zero
            for i in range(t)
        ], 1).flatten(0, 1)

        def half_scale(d):
            y = self.bn3_smallscale2(
                self.conv3_smallscale2(F.avg_pool2d(d, 2, 2)))
            return F.interpolate(y, d.shape[-2:])

        def full_scale(d):
            return self.bn3_smallscale4(self.conv3_smallscale4(d))

        forward_full = full_scale(forward)
        backward_full = full_scale(
            forward_full if self.dec2020_quirk else backward)
        y_forward = self.bn3(
            self.conv3((forward + half_scale(forward) + forward_full) / 3))
        y_backward = self.bn3(
            self.conv3((backward + half_scale(backward) + backward_full) / 3))
        y = (torch.sigmoid(y_forward) - 0.5 + torch.sigmoid(y_backward) -
             0.5) / 2
        return x + x * y


class ReleaseShift(nn.Module):

    def __init__(self, channels, num_segments):
        super().__init__()
        self.num_segments = num_segments
        self.conv = nn.Conv1d(
            channels, channels, 3, padding=1, groups=channels, bias=False)

    def forward(self, x):
        nt, c, h, w = x.shape
        t = self.num_segments
        seq = x.view(-1, t, c, h * w).permute(0, 3, 2, 1).reshape(-1, c, t)
        seq = self.conv(seq).view(-1, h * w, c, t)
        return seq.permute(0, 3, 2, 1).reshape(nt, c, h, w)


class ReleaseBottleneck(nn.Module):
    """fbresnet's bottleneck: every conv has a bias."""

    def __init__(self, inplanes, planes, stride, num_segments, temporal,
                 dec2020_quirk):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        if temporal:
            self.mse = ReleaseMSE(planes, num_segments, dec2020_quirk)
            self.shift = ReleaseShift(planes, num_segments)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.temporal = temporal
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride),
                nn.BatchNorm2d(planes * 4))
        else:
            self.downsample = None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        if self.temporal:
            out = self.shift(self.mse(out))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def _layer(inplanes, planes, blocks, stride, num_segments, temporal,
           dec2020_quirk):
    layers = [
        ReleaseBottleneck(inplanes, planes, stride, num_segments, temporal,
                          dec2020_quirk)
    ]
    layers += [
        ReleaseBottleneck(planes * 4, planes, 1, num_segments, temporal,
                          dec2020_quirk) for _ in range(1, blocks)
    ]
    return nn.Sequential(*layers)


class ReleaseBase(nn.Module):
    """``TDN_Net`` with its attribute names (keys of ``base_model``)."""

    def __init__(self, num_segments, dec2020_quirk=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv1_temp = nn.Conv2d(3, 64, 7, 2, 3)
        self.conv1_5 = nn.Sequential(
            nn.Conv2d(12, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
            nn.ReLU())
        self.resnext_layer1 = _layer(64, 64, 3, 1, num_segments, False, False)
        args = (num_segments, True, dec2020_quirk)
        self.layer1_bak = _layer(64, 64, 3, 1, num_segments, False, False)
        self.layer2_bak = _layer(256, 128, 4, 2, *args)
        self.layer3_bak = _layer(512, 256, 6, 2, *args)
        self.layer4_bak = _layer(1024, 512, 3, 2, *args)
        self.alpha, self.beta = (0.5, 0.5) if num_segments == 8 else (0.75,
                                                                      0.25)

    def forward(self, x):
        # x: (N*T, 15, H, W), the 5 frames of a segment stacked on channels.
        f = [x[:, 3 * i:3 * i + 3] for i in range(5)]
        diff = torch.cat([f[i + 1] - f[i] for i in range(4)], 1)
        motion = F.max_pool2d(
            self.conv1_5(F.avg_pool2d(diff, 2, 2)), 3, 2, 1)
        motion_layer1 = self.resnext_layer1(motion)
        rgb = F.max_pool2d(F.relu(self.bn1(self.conv1(f[2]))), 3, 2, 1)
        rgb = self.alpha * rgb + self.beta * F.interpolate(
            motion, rgb.shape[-2:])
        rgb = self.layer1_bak(rgb)
        rgb = self.alpha * rgb + self.beta * F.interpolate(
            motion_layer1, rgb.shape[-2:])
        rgb = self.layer4_bak(self.layer3_bak(self.layer2_bak(rgb)))
        return F.adaptive_avg_pool2d(rgb, 1).flatten(1)


class ReleaseTSN(nn.Module):
    """``ops/models.py``'s TSN: new_fc on every segment, then the mean."""

    def __init__(self, num_segments, dec2020_quirk=False,
                 num_classes=174):
        super().__init__()
        self.num_segments = num_segments
        self.num_classes = num_classes
        self.base_model = ReleaseBase(num_segments, dec2020_quirk)
        self.new_fc = nn.Linear(2048, num_classes)

    def configure(self, num_segments, dec2020_quirk=False):
        """Same weights, another segment count / L-TDM version."""
        self.num_segments = num_segments
        base = self.base_model
        base.alpha, base.beta = (0.5, 0.5) if num_segments == 8 else (0.75,
                                                                      0.25)
        for m in self.modules():
            if isinstance(m, (ReleaseMSE, ReleaseShift)):
                m.num_segments = num_segments
            if isinstance(m, ReleaseMSE):
                m.dec2020_quirk = dec2020_quirk
        return self

    def forward(self, x):
        scores = self.new_fc(self.base_model(x))
        return scores.view(-1, self.num_segments, self.num_classes).mean(1)
