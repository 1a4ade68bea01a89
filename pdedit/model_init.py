"""The model folders ``pdedit model init`` writes: tiny random ones of each kind, and PixelDance from text-to-video.

- ``build_tiny_model(kind, folder)``: a complete diffusers folder (model_index.json + components,
  safetensors) with a few thousand random weights, of the same classes as the real models: a
  PixelDancePipeline, a Wan2.1 FLF2V ``WanImageToVideoPipeline`` (CLIP vision encoder, two-image position
  embedding) or an ``LTXConditionPipeline``. The engines load and run them exactly as they run the real
  ones: for tests, recipes and trying the plumbing without a 28 GB download. Tokenizers are written from
  small vocabularies here, never downloaded.
- ``convert_t2v_pipeline(source)``: a PixelDancePipeline from a diffusers text-to-video folder
  (``pdedit.models.convert_t2v_unet`` widens its UNet).

This module sits above the pipelines it builds (``pdedit.pipeline``, diffusers') and the UNet
(``pdedit.models``), which import nothing from it.
"""

from __future__ import annotations

import json
import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pdedit.errors import MissingModel
from pdedit.model_folder import hub_or_local
from pdedit.models.build import LATENT_CHANNELS

if TYPE_CHECKING:
    from pdedit.pipeline import PixelDancePipeline

__all__ = ["TINY_BUILDERS", "build_tiny_model", "build_tiny_pipeline", "build_tiny_wan_pipeline",
           "build_tiny_ltx_pipeline", "convert_t2v_pipeline"]


# ---- PixelDance ----


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

    from pdedit.models import PixelDanceUNet, tiny_unet_config
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


def convert_t2v_pipeline(source: str | Path, *, num_frames: int = 16, fps: int = 8) -> PixelDancePipeline:
    """A PixelDancePipeline from a diffusers text-to-video folder or hub id (e.g. ModelScope's).

    The UNet is converted with ``convert_t2v_unet``; vae, text encoder, tokenizer and scheduler are
    carried over unchanged. Nothing is downloaded when ``source`` is a folder or HF_HUB_OFFLINE=1.

    Raises:
        MissingModel: ``source`` is absent or lacks a component, or a component cannot be loaded.
    """
    import diffusers
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from pdedit.models import convert_t2v_unet
    from pdedit.pipeline import PixelDancePipeline

    folder = Path(source).expanduser()
    where, local = hub_or_local(source)
    hint = ("give a diffusers text-to-video folder (model_index.json with unet, vae, text_encoder, tokenizer, "
            "scheduler), e.g. a local copy of damo-vilab/text-to-video-ms-1.7b")
    if local:
        missing = [c for c in ("unet", "vae", "text_encoder", "tokenizer", "scheduler") if not (folder / c).is_dir()]
        if not folder.is_dir() or missing:
            what = "does not exist" if not folder.exists() else f"lacks {', '.join(missing) or 'its components'}"
            raise MissingModel(f"text-to-video model {source} {what}: {hint}")
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


# ---- Wan2.1 FLF2V and LTX-Video ----


def _tiny_t5_tokenizer():
    """A T5 (sentencepiece-unigram) tokenizer over letters and word starts, built here and reloaded from disk."""
    from transformers import AutoTokenizer, T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in string.ascii_lowercase]
    pieces += [("\u2581" + c, -2.5) for c in string.ascii_lowercase]
    with tempfile.TemporaryDirectory() as folder:
        T5Tokenizer(vocab=pieces, extra_ids=0).save_pretrained(folder)
        return AutoTokenizer.from_pretrained(folder)


def build_tiny_wan_pipeline(folder: str | Path | None = None, seed: int = 0):
    """A tiny random WanImageToVideoPipeline shaped like Wan2.1 FLF2V (seeded); saved to ``folder`` when given."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    z_dim = 4
    vae = AutoencoderKLWan(base_dim=3, z_dim=z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True], latents_mean=[0.1, -0.1, 0.0, 0.2],
                           latents_std=[1.5, 1.0, 2.0, 1.2])
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=16, num_layers=1, num_heads=2,
                                               relative_attention_num_buckets=8))
    clip_size, clip_patch = 16, 4
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=8, projection_dim=8, num_hidden_layers=2,
                                                     num_attention_heads=2, image_size=clip_size, intermediate_size=16,
                                                     patch_size=clip_patch))
    image_tokens = (clip_size // clip_patch) ** 2 + 1
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8,
        in_channels=z_dim + 4 + z_dim,  # noisy latent + frame mask (VAE temporal factor 4) + condition latent
        out_channels=z_dim, text_dim=16, freq_dim=32, ffn_dim=16, num_layers=1, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=8,
        pos_embed_seq_len=2 * image_tokens,  # FLF2V: CLIP tokens of the first and the last image
    )
    pipe = WanImageToVideoPipeline(
        tokenizer=_tiny_t5_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        image_processor=CLIPImageProcessor(crop_size=clip_size, size=clip_size),
        image_encoder=image_encoder,
        transformer=transformer,
    )
    if folder is not None:
        pipe.save_pretrained(str(folder), safe_serialization=True)
    return pipe


def build_tiny_ltx_pipeline(folder: str | Path | None = None, seed: int = 0):
    """A tiny random LTXConditionPipeline (VAE factor 4 in space and time, seeded); saved to ``folder`` when given."""
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=1, patch_size_t=1,
        encoder_causal=True, decoder_causal=False,
    )
    text_encoder = T5EncoderModel(T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=16, num_layers=1, num_heads=2,
                                           relative_attention_num_buckets=8))
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
                                             num_layers=1, caption_channels=16)
    pipe = LTXConditionPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                                tokenizer=_tiny_t5_tokenizer(), transformer=transformer)
    if folder is not None:
        pipe.save_pretrained(str(folder), safe_serialization=True)
    return pipe


# The kinds `pdedit model init --tiny --kind KIND` makes: the engine that runs each.
TINY_BUILDERS: dict[str, Callable[..., Any]] = {
    "pixeldance": build_tiny_pipeline,
    "wan": build_tiny_wan_pipeline,
    "ltx": build_tiny_ltx_pipeline,
}


def build_tiny_model(kind: str, folder: str | Path | None = None, seed: int = 0) -> Any:
    """A tiny random model of ``kind`` (pixeldance, wan or ltx), seeded; saved to ``folder`` when given."""
    from pdedit.errors import BadInput

    if kind not in TINY_BUILDERS:
        raise BadInput(f"--kind {kind}: tiny models are made for {', '.join(TINY_BUILDERS)}")
    return TINY_BUILDERS[kind](folder, seed=seed)
