"""An identity autoencoder, so a PixelDance model can run in pixel space (no VAE compression).

Small models on small frames (tests, the recipe check in benchmarks/recipe_check.py) learn much faster
on pixels than through a random, unfaithful VAE; with this component in the ``vae`` slot the pipeline
code is unchanged: latents are the frames in [-1, 1], factor 1, C = 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

__all__ = ["PixelSpaceVAE"]


@dataclass
class _Identity:
    """A distribution whose mode and samples are the input itself."""

    x: torch.Tensor

    def mode(self) -> torch.Tensor:
        return self.x

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.x


@dataclass
class _Encoded:
    latent_dist: _Identity


@dataclass
class _Decoded:
    sample: torch.Tensor


class PixelSpaceVAE(ModelMixin, ConfigMixin):
    """The identity in the place of an ``AutoencoderKL``: ``encode(x).latent_dist.mode() == x``."""

    @register_to_config
    def __init__(self, latent_channels: int = 3, block_out_channels: tuple[int, ...] = (3,),
                 scaling_factor: float = 1.0):
        super().__init__()
        # One saved buffer gives the module a device, a dtype and a weights file, which diffusers'
        # from_pretrained requires of every model component.
        self.register_buffer("anchor", torch.zeros(1))

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> _Encoded:
        """The frames themselves are the latents."""
        return _Encoded(_Identity(x))

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> _Decoded:
        """The latents are the frames."""
        return _Decoded(z)
