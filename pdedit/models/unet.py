"""PixelDanceUNet: a ModelScope-style 3D UNet whose input is ``concat(z_t, c_image)`` on channels.

PixelDance (arXiv 2311.10982, §3.1) inflates a 2D UNet to 3D: a 1D temporal convolution after every
2D conv block and a 1D temporal self-attention after every 2D attention block, text by
cross-attention. diffusers' ``UNet3DConditionModel`` is that design; this subclass changes two things:

- the input has 2C channels, ``[z_t, c_image]`` (§3.1: the image instructions are concatenated with
  the noisy latent), the output C;
- a 1-frame input skips every temporal layer (identity), so images can be trained jointly with videos
  (§3). diffusers runs the temporal layers on 1-frame inputs too, which would let images train them.
"""

from __future__ import annotations

import torch

# model_index.json records this module as the unet's library, and diffusers' loader looks the loadable
# base class up by name in it: ModelMixin must be importable from here.
from diffusers import ModelMixin, UNet3DConditionModel  # noqa: F401
from diffusers.configuration_utils import register_to_config
from diffusers.models.resnet import TemporalConvLayer
from diffusers.models.transformers.transformer_temporal import (
    TransformerTemporalModel,
    TransformerTemporalModelOutput,
)
from diffusers.models.unets.unet_3d_condition import UNet3DConditionOutput

__all__ = ["PixelDanceUNet"]


class ImageBypassTemporalConv(TemporalConvLayer):
    """A temporal conv that is the identity on 1-frame inputs (images)."""

    def forward(self, hidden_states: torch.Tensor, num_frames: int = 1) -> torch.Tensor:
        """Identity for images; the diffusers temporal conv otherwise."""
        if num_frames == 1:
            return hidden_states
        return super().forward(hidden_states, num_frames=num_frames)


class ImageBypassTemporalAttention(TransformerTemporalModel):
    """A temporal transformer that is the identity on 1-frame inputs (images)."""

    def forward(self, hidden_states: torch.Tensor, *args, num_frames: int = 1, return_dict: bool = True, **kwargs):
        """Identity for images; the diffusers temporal attention otherwise."""
        if num_frames == 1:
            return TransformerTemporalModelOutput(sample=hidden_states) if return_dict else (hidden_states,)
        return super().forward(hidden_states, *args, num_frames=num_frames, return_dict=return_dict, **kwargs)


def _bypass_temporal_layers_for_images(model: torch.nn.Module) -> None:
    """Give every temporal layer the image bypass, in place (same weights, same state-dict keys)."""
    # Re-classing keeps parameters and names untouched, so checkpoints of a plain
    # UNet3DConditionModel load into a PixelDanceUNet and back.
    for module in model.modules():
        if type(module) is TemporalConvLayer:
            module.__class__ = ImageBypassTemporalConv
        elif type(module) is TransformerTemporalModel:
            module.__class__ = ImageBypassTemporalAttention


class PixelDanceUNet(UNet3DConditionModel):
    """The PixelDance denoiser: ``in_channels = 2C`` (``[z_t, c_image]``), ``out_channels = C``.

    Config and weights are those of diffusers' ``UNet3DConditionModel`` (so ``save_pretrained`` /
    ``from_pretrained`` work unchanged); build one with ``pdedit.models.tiny_unet_config`` or convert a
    text-to-video UNet with ``pdedit.models.convert_t2v_unet``.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 8,
        out_channels: int = 4,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlock3D",
            "CrossAttnDownBlock3D",
            "CrossAttnDownBlock3D",
            "DownBlock3D",
        ),
        up_block_types: tuple[str, ...] = ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int | None = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 1024,
        attention_head_dim: int | tuple[int] = 64,
        num_attention_heads: int | tuple[int] | None = None,
        time_cond_proj_dim: int | None = None,
    ):
        # The signature is UNet3DConditionModel's (diffusers builds models from it), with 2C = 8 in.
        if in_channels != 2 * out_channels:
            raise ValueError(
                f"a PixelDanceUNet takes [z_t, c_image] on channels, so in_channels must be 2 x out_channels; "
                f"got in_channels={in_channels}, out_channels={out_channels}"
            )
        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=down_block_types,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            downsample_padding=downsample_padding,
            mid_block_scale_factor=mid_block_scale_factor,
            act_fn=act_fn,
            norm_num_groups=norm_num_groups,
            norm_eps=norm_eps,
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=attention_head_dim,
            num_attention_heads=num_attention_heads,
            time_cond_proj_dim=time_cond_proj_dim,
        )
        _bypass_temporal_layers_for_images(self)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        *args,
        c_image: torch.Tensor | None = None,
        **kwargs,
    ) -> UNet3DConditionOutput | tuple[torch.Tensor]:
        """Predict noise for ``sample`` = ``[z_t, c_image]`` ``(B, 2C, F, h, w)``.

        Pass either the concatenation as ``sample``, or ``z_t`` ``(B, C, F, h, w)`` as ``sample`` and
        ``c_image`` of the same shape. Other arguments are those of ``UNet3DConditionModel.forward``.
        """
        if c_image is not None:
            if c_image.shape != sample.shape:
                raise ValueError(f"c_image {tuple(c_image.shape)} must match z_t {tuple(sample.shape)}")
            sample = torch.cat([sample, c_image], dim=1)  # (B, 2C, F, h, w)
        if sample.shape[1] != self.config.in_channels:
            raise ValueError(
                f"PixelDanceUNet expects {self.config.in_channels} input channels ([z_t, c_image]), "
                f"got {sample.shape[1]}"
            )
        return super().forward(sample, timestep, encoder_hidden_states, *args, **kwargs)
