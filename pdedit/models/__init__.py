"""PixelDance models: the UNet, a tiny configuration, conversion from text-to-video UNets.

Whole model folders are built by ``pdedit.model_init``.
"""

from pdedit.models.build import LATENT_CHANNELS, convert_t2v_unet, tiny_unet_config
from pdedit.models.pixel_space import PixelSpaceVAE  # imported here so pipelines saved with it load
from pdedit.models.unet import PixelDanceUNet

__all__ = ["PixelDanceUNet", "tiny_unet_config", "convert_t2v_unet", "LATENT_CHANNELS", "PixelSpaceVAE"]
