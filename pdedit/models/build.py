"""Building PixelDance UNets: a tiny configuration, and conversion from a text-to-video UNet.

Whole model folders (tiny ones of every kind, a PixelDancePipeline from text-to-video) are built by
``pdedit.model_init``, above the pipeline; this module needs only the UNet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from pdedit.models.unet import PixelDanceUNet

if TYPE_CHECKING:
    from diffusers import UNet3DConditionModel

__all__ = ["tiny_unet_config", "convert_t2v_unet", "LATENT_CHANNELS"]

LATENT_CHANNELS = 4  # C of the Stable Diffusion / ModelScope VAE latents


def tiny_unet_config(latent_channels: int = LATENT_CHANNELS) -> dict[str, Any]:
    """Config of a tiny PixelDanceUNet (about 0.4M parameters): the full design, small channel counts."""
    return {
        "sample_size": 8,  # latents of 8x8: 64x64 frames with the tiny factor-8 VAE
        "in_channels": 2 * latent_channels,
        "out_channels": latent_channels,
        "down_block_types": ("CrossAttnDownBlock3D", "DownBlock3D"),
        "up_block_types": ("UpBlock3D", "CrossAttnUpBlock3D"),
        "block_out_channels": (16, 32),
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "cross_attention_dim": 32,
        "attention_head_dim": 4,
    }


def convert_t2v_unet(unet: UNet3DConditionModel) -> PixelDanceUNet:
    """Turn a text-to-video UNet (C in) into a PixelDanceUNet (2C in) that starts out identical to it.

    conv_in is widened from C to 2C input channels; the new c_image weights are zero, so with any
    c_image the converted model first predicts exactly what the text-to-video model did, and
    fine-tuning (PixelDance recipe) teaches it to use the instructions. Everything else is copied.
    """
    c = unet.config.in_channels
    if unet.config.out_channels != c:
        raise ValueError(f"expected a text-to-video UNet with in_channels == out_channels, got {c} -> "
                         f"{unet.config.out_channels}")
    config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
    config["in_channels"] = 2 * c
    new = PixelDanceUNet.from_config(config).to(device=unet.device, dtype=unet.dtype)
    state = unet.state_dict()
    old_w = state.pop("conv_in.weight")  # (out, C, k, k)
    missing, unexpected = new.load_state_dict(state, strict=False)
    if missing != ["conv_in.weight"] or unexpected:
        raise ValueError(f"UNet layout differs from a UNet3DConditionModel: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        new.conv_in.weight.zero_()
        new.conv_in.weight[:, :c] = old_w  # z_t channels as before, c_image channels zero
    return new
