"""Building PixelDance checkpoints: a tiny random model, and conversion from a text-to-video UNet."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pdedit.models.unet import PixelDanceUNet

if TYPE_CHECKING:
    from diffusers import UNet3DConditionModel

    from pdedit.pipeline import PixelDancePipeline

__all__ = ["tiny_unet_config", "build_tiny_pipeline", "convert_t2v_unet", "convert_t2v_pipeline", "LATENT_CHANNELS"]

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


def _tiny_vae(latent_channels: int = LATENT_CHANNELS):
    """A random AutoencoderKL with four 8-channel blocks: spatial factor 8, like the real one."""
    from diffusers import AutoencoderKL

    # One block would not downsample and the UNet would run at pixel size (~100x slower): FACTS.md.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=64,
    )


def _tiny_tokenizer():
    """A CLIP tokenizer written from a few-hundred-token vocabulary: no download."""
    from transformers import CLIPTokenizer

    chars = string.ascii_lowercase + string.digits + ".,!?'-"
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for ch in chars:
            vocab[ch + suffix] = len(vocab)
    pairs = ["t h", "h e", "i n", "a n", "e r", "o n", "r e", "a t", "e n", "o r"]
    for pair in pairs:
        vocab.setdefault(pair.replace(" ", ""), len(vocab))
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = Path(tmp, "vocab.json"), Path(tmp, "merges.txt")
        vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(pairs) + "\n", encoding="utf-8")
        # model_max_length must be set when built from files, or padding to max length overflows.
        return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=77)


def _tiny_text_encoder(vocab_size: int, hidden_size: int = 32):
    """A random 2-layer CLIP text encoder with ``hidden_size`` features (the UNet's cross_attention_dim)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModel(config)


def build_tiny_pipeline(folder: str | Path | None = None, seed: int = 0) -> PixelDancePipeline:
    """Build a tiny random PixelDancePipeline (seeded); save it to ``folder`` when given.

    Args:
        folder: where to ``save_pretrained`` it (a diffusers folder, safetensors); None keeps it in memory.
        seed: torch seed for the random weights, so two builds with one seed are identical.
    """
    from diffusers import DDIMScheduler

    from pdedit.pipeline import PixelDancePipeline

    torch.manual_seed(seed)
    unet = PixelDanceUNet(**tiny_unet_config())
    vae = _tiny_vae()
    tokenizer = _tiny_tokenizer()
    text_encoder = _tiny_text_encoder(len(tokenizer), hidden_size=unet.config.cross_attention_dim)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = PixelDancePipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        num_frames=8, fps=8,
    )
    if folder is not None:
        pipe.save_pretrained(str(folder), safe_serialization=True)
    return pipe


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


def convert_t2v_pipeline(source: str | Path, *, num_frames: int = 16, fps: int = 8) -> PixelDancePipeline:
    """A PixelDancePipeline from a diffusers text-to-video folder or hub id (e.g. ModelScope's).

    The UNet is converted with ``convert_t2v_unet``; vae, text encoder, tokenizer and scheduler are
    carried over unchanged. Nothing is downloaded when ``source`` is a folder or HF_HUB_OFFLINE=1.

    Raises:
        MissingModel: ``source`` is absent or lacks a component, or a component cannot be loaded.
    """
    import os

    import diffusers
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from pdedit.errors import MissingModel
    from pdedit.pipeline import PixelDancePipeline

    folder = Path(source).expanduser()
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    local = folder.exists() or offline
    hint = ("give a diffusers text-to-video folder (model_index.json with unet, vae, text_encoder, tokenizer, "
            "scheduler), e.g. a local copy of damo-vilab/text-to-video-ms-1.7b")
    if local:
        missing = [c for c in ("unet", "vae", "text_encoder", "tokenizer", "scheduler") if not (folder / c).is_dir()]
        if not folder.is_dir() or missing:
            what = "does not exist" if not folder.exists() else f"lacks {', '.join(missing) or 'its components'}"
            raise MissingModel(f"text-to-video model {source} {what}: {hint}")
    where = str(folder) if local else str(source)
    kwargs = {"local_files_only": local}
    try:
        unet = UNet3DConditionModel.from_pretrained(where, subfolder="unet", **kwargs)
        vae = AutoencoderKL.from_pretrained(where, subfolder="vae", **kwargs)
        text_encoder = CLIPTextModel.from_pretrained(where, subfolder="text_encoder", **kwargs)
        tokenizer = CLIPTokenizer.from_pretrained(where, subfolder="tokenizer", **kwargs)
        scheduler_config = DDIMScheduler.load_config(where, subfolder="scheduler", **kwargs)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise MissingModel(f"cannot load text-to-video model {source} ({type(err).__name__}: {err}): {hint}") from err
    scheduler_cls = getattr(diffusers, scheduler_config.get("_class_name", ""), DDIMScheduler)
    return PixelDancePipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=convert_t2v_unet(unet),
        scheduler=scheduler_cls.from_config(scheduler_config),
        num_frames=num_frames,
        fps=fps,
    )
