"""PixelDance image-instruction conditioning: the one definition, used by the pipeline and finetune.

Glossary (Zeng et al., "Make Pixels Dance", arXiv 2311.10982, §3):

- ``f_first``, ``f_last``: VAE latents of the first- and last-frame instructions, ``(B, C, h, w)``.
- ``c_image``: the image condition ``[f_first, zeros x (F-2), f_last]`` laid out over the F latent
  frames, ``(B, C, F, h, w)``; it is concatenated with ``z_t`` on channels, so the UNet sees 2C.
- ``image_noise``: the level at which c_image is perturbed with noise (training, and optionally at
  sampling, so the model does not copy the instruction pixel by pixel).
- ``eta``: the probability that the last-frame instruction is dropped (zeroed) in training.
- ``tau``: the fraction of the T denoising steps that see the last-frame instruction; the last
  frame guides only the first ``round(tau * T)`` steps, then it is dropped.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "build_c_image",
    "perturb_c_image",
    "drop_last_frame",
    "round_steps",
    "last_frame_schedule",
]


def build_c_image(f_first: torch.Tensor, f_last: torch.Tensor | None, num_frames: int) -> torch.Tensor:
    """Lay out ``[f_first, zeros x (F-2), f_last]`` from ``(B, C, h, w)`` latents; ``f_last=None`` is zeros."""
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2 for a first/last layout, got {num_frames}")
    if f_last is not None and f_last.shape != f_first.shape:
        raise ValueError(f"f_first {tuple(f_first.shape)} and f_last {tuple(f_last.shape)} differ in shape")
    b, c, h, w = f_first.shape
    c_image = f_first.new_zeros(b, c, num_frames, h, w)  # (B, C, F, h, w)
    c_image[:, :, 0] = f_first
    if f_last is not None:
        c_image[:, :, -1] = f_last
    return c_image


def perturb_c_image(
    c_image: torch.Tensor, level: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise of std ``level`` to the instruction frames of c_image (zero frames stay zero).

    PixelDance §3.2 perturbs c_image with noise so the model treats the instructions as guidance rather
    than frames to copy. Only the non-zero (instruction) frames are perturbed, so a dropped last frame
    stays an exact zero, which is how the model learns "no last frame".
    """
    if level < 0:
        raise ValueError(f"image noise level must be >= 0, got {level}")
    if level == 0:
        return c_image
    noise = torch.randn(c_image.shape, generator=generator, device=c_image.device, dtype=c_image.dtype)
    present = c_image.flatten(3).abs().amax(dim=(1, 3), keepdim=True) > 0  # (B, 1, F, 1)
    present = present.unsqueeze(-1)  # (B, 1, F, 1, 1)
    return c_image + level * noise * present


def drop_last_frame(c_image: torch.Tensor, keep: torch.Tensor | bool) -> torch.Tensor:
    """Zero the last-frame instruction where ``keep`` is False (a bool, or a ``(B,)`` bool tensor)."""
    if isinstance(keep, bool):
        keep = torch.full((c_image.shape[0],), keep, dtype=torch.bool, device=c_image.device)
    mask = torch.ones_like(c_image[:1, :1, :, :1, :1]).repeat(c_image.shape[0], 1, 1, 1, 1)  # (B,1,F,1,1)
    mask[:, :, -1] = keep.to(c_image.dtype).view(-1, 1, 1, 1)
    return c_image * mask


def round_steps(fraction: float, num_steps: int) -> int:
    """``round(fraction * T)`` with halves rounded up (Python's ``round`` rounds them to even), at most T.

    Shared by the tau schedule and the SDEdit strength, so a fraction of the steps means one thing.
    """
    return min(num_steps, int(math.floor(fraction * num_steps + 0.5)))


def last_frame_schedule(tau: float, num_steps: int) -> list[bool]:
    """Per step, whether the last-frame instruction is given: True for the first ``round(tau * T)`` steps.

    PixelDance §3.2: the last frame guides only the first tau of the steps (tau=0: none, tau=1: all).
    Halves round up (``round_steps``: tau=0.5 of 5 steps is 3 steps), which keeps the count monotone in tau.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    k = round_steps(tau, num_steps)
    return [i < k for i in range(num_steps)]
