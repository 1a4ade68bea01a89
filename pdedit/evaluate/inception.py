"""The Inception-v3 of FID (Heusel et al., 2017): 2048-d pool features of frames.

The architecture of torchvision's ``Inception3`` with the changes of the TensorFlow graph FID was
defined on (pytorch-fid's ``FIDInception*`` blocks: average pools that ignore padding, a max pool in the
last block), under torchvision's layer names, so pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``
(a state dict, 1008 classes) loads as it is. torchvision's own ImageNet weights load too, but give other
numbers than published FIDs. ``width`` scales every channel count (the tests build a tiny one); the
loader reads it off the weights.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pdedit.evaluate.weights import load_strict, read_state_dict

__all__ = ["INCEPTION_HINT", "FIDInception", "load_inception", "inception_features"]

INCEPTION_WHAT = "Inception-v3 (the FID network) for FID"
INCEPTION_HINT = ("the usual file is pt_inception-2015-12-05-6726825d.pth from the pytorch-fid releases "
                  "(github.com/mseitzer/pytorch-fid), a state dict; download it yourself and pass its path")


class BasicConv2d(nn.Module):
    """Conv2d (no bias) + BatchNorm (eps 0.001) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 average pool, stride 1, that does not count the padding (the TF graph's pooling)."""
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool: int, ch):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, ch(64), 1)
        self.branch5x5_1 = BasicConv2d(cin, ch(48), 1)
        self.branch5x5_2 = BasicConv2d(ch(48), ch(64), 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, ch(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(ch(64), ch(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(ch(96), ch(96), 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool, 1)
        self.out_channels = ch(64) + ch(64) + ch(96) + pool

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int, ch):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, ch(384), 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, ch(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(ch(64), ch(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(ch(96), ch(96), 3, stride=2)
        self.out_channels = ch(384) + ch(96) + cin

    def forward(self, x):
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int, ch):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, ch(192), 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, ch(192), (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, ch(192), (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, ch(192), 1)
        self.out_channels = 4 * ch(192)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int, ch):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, ch(192), 1)
        self.branch3x3_2 = BasicConv2d(ch(192), ch(320), 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, ch(192), 1)
        self.branch7x7x3_2 = BasicConv2d(ch(192), ch(192), (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(ch(192), ch(192), (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(ch(192), ch(192), 3, stride=2)
        self.out_channels = ch(320) + ch(192) + cin

    def forward(self, x):
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    """The last blocks; ``max_pool`` for Mixed_7c, where the FID graph pools by max, not average."""

    def __init__(self, cin: int, ch, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, ch(320), 1)
        self.branch3x3_1 = BasicConv2d(cin, ch(384), 1)
        self.branch3x3_2a = BasicConv2d(ch(384), ch(384), (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(ch(384), ch(384), (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, ch(448), 1)
        self.branch3x3dbl_2 = BasicConv2d(ch(448), ch(384), 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(ch(384), ch(384), (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(ch(384), ch(384), (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, ch(192), 1)
        self.out_channels = ch(320) + 4 * ch(384) + ch(192)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(pooled)], 1)


class FIDInception(nn.Module):
    """Inception-v3 (FID variant) up to the 2048-d pool features (x ``width``), plus its classifier."""

    def __init__(self, num_classes: int = 1008, width: float = 1.0):
        super().__init__()
        self.width = width

        def ch(c: int) -> int:
            return max(1, round(c * width))

        self.Conv2d_1a_3x3 = BasicConv2d(3, ch(32), 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(ch(32), ch(32), 3)
        self.Conv2d_2b_3x3 = BasicConv2d(ch(32), ch(64), 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(ch(64), ch(80), 1)
        self.Conv2d_4a_3x3 = BasicConv2d(ch(80), ch(192), 3)
        self.Mixed_5b = InceptionA(ch(192), ch(32), ch)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, ch(64), ch)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, ch(64), ch)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, ch)
        cin = self.Mixed_6a.out_channels
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            setattr(self, name, InceptionC(cin, ch(c7), ch))
            cin = getattr(self, name).out_channels
        self.Mixed_7a = InceptionD(cin, ch)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, ch, max_pool=False)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, ch, max_pool=True)
        self.feature_dim = self.Mixed_7c.out_channels
        self.fc = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> pool features (B, feature_dim)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2)))
        x = F.max_pool2d(x, 3, 2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))


def load_inception(path: str | os.PathLike | None, device: str | torch.device = "cpu") -> FIDInception:
    """The FID Inception from a local state dict (width and class count read off the weights)."""
    state = read_state_dict(path, INCEPTION_WHAT, "--inception FILE", INCEPTION_HINT)
    # torchvision's checkpoints carry the auxiliary classifier, which FID never uses.
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    try:
        width = state["Conv2d_1a_3x3.conv.weight"].shape[0] / 32
        num_classes = state["fc.weight"].shape[0]
    except KeyError:
        width, num_classes = 1.0, 1008  # load_strict then lists what is missing
    return load_strict(FIDInception(num_classes, width), state, INCEPTION_WHAT, INCEPTION_HINT).to(device)


@torch.no_grad()
def inception_features(model: FIDInception, frames: np.ndarray, size: int = 299, batch: int = 16) -> np.ndarray:
    """Pool features (N, feature_dim) of uint8 frames (N, H, W, 3), each resized to ``size`` squared.

    As pytorch-fid: bilinear resize (aspect not kept), values scaled to [-1, 1].
    """
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[i:i + batch])).to(device).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False) / 127.5 - 1.0
        out.append(model(x).double().cpu().numpy())
    return np.concatenate(out)
