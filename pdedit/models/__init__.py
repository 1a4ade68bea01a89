"""PixelDance models: the UNet, a tiny random configuration, conversion from text-to-video UNets."""

from pdedit.models.build import (
    LATENT_CHANNELS,
    build_tiny_pipeline,
    convert_t2v_pipeline,
    convert_t2v_unet,
    tiny_unet_config,
)
from pdedit.models.pixel_space import PixelSpaceVAE  # imported here so pipelines saved with it load
from pdedit.models.unet import PixelDanceUNet

__all__ = ["PixelDanceUNet", "tiny_unet_config", "build_tiny_pipeline", "convert_t2v_unet",
           "convert_t2v_pipeline", "LATENT_CHANNELS", "PixelSpaceVAE"]
