"""The model a training run updates: which pipeline to start from, LoRA, gradient checkpointing, EMA swaps.

``build_model(config)`` gives a PixelDancePipeline: a tiny random one (latent or pixel space) for CPU
runs, or a saved folder (``pdedit model init --from-t2v`` output, an earlier run's ``final``).
"""

from __future__ import annotations

import contextlib

import torch

from finetune.config import Config

__all__ = ["build_model", "add_lora", "enable_gradient_checkpointing", "encode_text", "ema_weights", "plain_unet"]


def build_model(config: Config):
    """The PixelDancePipeline to train: a tiny random one (latent or pixel space) or a saved folder."""
    from diffusers import DDIMScheduler

    from pdedit.engines.pixeldance import load_pipeline
    from pdedit.model_init import build_tiny_pipeline
    from pdedit.models import PixelDanceUNet, PixelSpaceVAE, tiny_unet_config
    from pdedit.pipeline import PixelDancePipeline

    m = config.model
    if m.init == "tiny":
        pipe = build_tiny_pipeline(seed=m.seed)
        if m.pixel_space or m.unet:
            channels = 3 if m.pixel_space else pipe.unet.config.out_channels
            unet_config = tiny_unet_config(latent_channels=channels)
            w, h = config.data.size
            if m.pixel_space:
                unet_config["sample_size"] = [h, w]
            unet_config.update(m.unet)
            torch.manual_seed(m.seed)
            pipe = PixelDancePipeline(
                vae=PixelSpaceVAE() if m.pixel_space else pipe.vae,
                text_encoder=pipe.text_encoder,
                tokenizer=pipe.tokenizer,
                unet=PixelDanceUNet(**unet_config),
                scheduler=pipe.scheduler,
                num_frames=config.data.num_frames,
                fps=8,
            )
    else:
        pipe = load_pipeline(m.init, device=None)  # accelerate places the modules
    overrides = dict(m.scheduler) if m.scheduler else {}
    overrides["prediction_type"] = m.prediction_type
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, **overrides)
    pipe.register_to_config(num_frames=config.data.num_frames)
    return pipe


def add_lora(unet: torch.nn.Module, rank: int, alpha: float | None) -> torch.nn.Module:
    """Wrap the UNet with LoRA adapters on its attention projections; conv_in stays fully trainable."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=rank,
        lora_alpha=alpha or rank,
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        # conv_in's c_image half starts at zero after conversion from a text-to-video UNet: it has to learn.
        modules_to_save=["conv_in"],
    )
    return get_peft_model(unet, lora)


def enable_gradient_checkpointing(unet: torch.nn.Module) -> None:
    """Recompute each down/mid/up block in the backward pass instead of storing its activations.

    diffusers' 3D UNet blocks do not implement checkpointing, so each block's forward is wrapped here.
    """
    from torch.utils.checkpoint import checkpoint

    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    for block in blocks:
        forward = block.forward

        def wrapped(*args, _forward=forward, **kwargs):
            if torch.is_grad_enabled():
                return checkpoint(_forward, *args, use_reentrant=False, **kwargs)
            return _forward(*args, **kwargs)

        block.forward = wrapped


def encode_text(pipe, captions: list[str], device: torch.device) -> torch.Tensor:
    """CLIP embeddings (B, L, D) of captions, through the pipeline's own prompt encoder."""
    return pipe.encode_prompt(list(captions), device, do_classifier_free_guidance=False)[0]


@contextlib.contextmanager
def ema_weights(ema, params: list[torch.nn.Parameter]):
    """Temporarily swap the EMA weights in (for validation samples); a no-op without EMA."""
    if ema is None:
        yield
        return
    ema.store(params)
    ema.copy_to(params)
    try:
        yield
    finally:
        ema.restore(params)


def plain_unet(accelerator, unet: torch.nn.Module, merge: bool = False) -> torch.nn.Module:
    """The bare PixelDanceUNet behind accelerate's (and peft's) wrappers, in eval mode."""
    model = accelerator.unwrap_model(unet)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload() if merge else model.get_base_model()
    return model.eval()
