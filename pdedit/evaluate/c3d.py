"""C3D (Tran et al., "Learning Spatiotemporal Features with 3D Convolutional Networks", ICCV 2015): the IS classifier.

The UCF-101 Inception Score protocol (TGAN, Saito et al. 2017; used by the video GAN and diffusion
papers PixelDance compares with) classifies 16-frame clips with a C3D trained on UCF-101. Layer names
are those of the common PyTorch port (``conv1``, ``conv2``, ``conv3a`` ... ``conv5b``, ``fc6``, ``fc7``,
``fc8``). ``width`` scales the convolution channels, ``hidden`` the fully connected layers; the loader
reads both, and the class count, off the weights.

Input protocol: 16 frames spread over the clip, each resized to 128x171 (h x w), centre-cropped to
112x112, in 0..255 minus a per-channel mean (``C3D_MEAN``).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pdedit.evaluate.weights import load_strict, read_state_dict

__all__ = ["C3D_HINT", "C3D_FRAMES", "C3D_MEAN", "C3D", "load_c3d", "c3d_probabilities"]

C3D_WHAT = "C3D (trained on UCF-101) for the Inception Score"
C3D_HINT = ("the UCF-101 protocol's classifier is the C3D of TGAN/TGANv2 (github.com/pfnet-research/tgan2, "
            "conv3d_deepnetA_ucf.npz; StyleGAN-V ships it as c3d_ucf101.pt): convert it to a state dict with "
            "the layer names conv1 ... fc8 and pass its path")
C3D_FRAMES = 16
C3D_RESIZE = (128, 171)  # (h, w) before the centre crop
C3D_CROP = 112
# A per-channel RGB mean (0..255) in place of the Sports-1M mean clip the original subtracts per pixel:
# IS figures move slightly with it, which is one reason to report the protocol beside them.
C3D_MEAN = (101.4, 97.7, 90.2)

_CONVS = (("conv1", 64), ("conv2", 128), ("conv3a", 256), ("conv3b", 256), ("conv4a", 512), ("conv4b", 512),
          ("conv5a", 512), ("conv5b", 512))
_POOL_AFTER = {"conv1": (1, 2, 2), "conv2": (2, 2, 2), "conv3b": (2, 2, 2), "conv4b": (2, 2, 2), "conv5b": (2, 2, 2)}


class C3D(nn.Module):
    """Eight 3x3x3 convolutions, five max pools, three fully connected layers, softmax over classes."""

    def __init__(self, num_classes: int = 101, width: float = 1.0, hidden: int = 4096):
        super().__init__()
        cin = 3
        for name, c in _CONVS:
            cout = max(1, round(c * width))
            setattr(self, name, nn.Conv3d(cin, cout, 3, padding=1))
            cin = cout
        # 16 x 112 x 112 pools down to 1 x 4 x 4 (the last pool pads height and width by one).
        self.fc6 = nn.Linear(cin * 4 * 4, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.fc8 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 16, 112, 112), mean subtracted -> class logits (B, num_classes)."""
        for name, _ in _CONVS:
            x = F.relu(getattr(self, name)(x))
            if name in _POOL_AFTER:
                k = _POOL_AFTER[name]
                x = F.max_pool3d(x, k, k, padding=(0, 1, 1) if name == "conv5b" else 0)
        x = F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))
        return self.fc8(x)


def load_c3d(path: str | os.PathLike | None, device: str | torch.device = "cpu") -> C3D:
    """A C3D from a local state dict (channel width, hidden size and class count read off the weights)."""
    state = read_state_dict(path, C3D_WHAT, "--c3d FILE", C3D_HINT)
    try:
        width = state["conv1.weight"].shape[0] / 64
        hidden, num_classes = state["fc6.weight"].shape[0], state["fc8.weight"].shape[0]
    except KeyError:
        width, hidden, num_classes = 1.0, 4096, 101  # load_strict then lists what is missing
    return load_strict(C3D(num_classes, width, hidden), state, C3D_WHAT, C3D_HINT).to(device)


@torch.no_grad()
def c3d_probabilities(model: C3D, clip: np.ndarray) -> np.ndarray:
    """Class probabilities (num_classes,) of one uint8 clip (T, H, W, 3) under the protocol above."""
    from pdedit.video import even_indices

    device = next(model.parameters()).device
    frames = clip[list(even_indices(0, len(clip) - 1, C3D_FRAMES))]  # repeats frames of shorter clips
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float()  # (16, 3, H, W)
    x = F.interpolate(x, size=C3D_RESIZE, mode="bilinear", align_corners=False)
    top, left = (C3D_RESIZE[0] - C3D_CROP) // 2, (C3D_RESIZE[1] - C3D_CROP) // 2
    x = x[:, :, top:top + C3D_CROP, left:left + C3D_CROP]
    x = x - torch.tensor(C3D_MEAN, device=device)[None, :, None, None]
    logits = model(x.permute(1, 0, 2, 3)[None])  # (1, 3, 16, 112, 112)
    return torch.softmax(logits.double(), dim=1)[0].cpu().numpy()
