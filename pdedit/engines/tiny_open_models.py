"""Tiny random Wan2.1 FLF2V and LTX-Video model folders: for tests, benchmarks and smoke runs, no download.

Each builder writes a complete diffusers folder (model_index.json + components, safetensors) with a few
thousand random weights: the same classes as the real models (``WanImageToVideoPipeline`` with a CLIP
vision encoder and a two-image position embedding, as FLF2V has; ``LTXConditionPipeline``), so the
engines load and run them exactly as they run the real ones. The T5 tokenizer is built from a small
unigram vocabulary written here (lower-case letters), never downloaded.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import torch

__all__ = ["build_tiny_t5_tokenizer", "build_tiny_wan_pipeline", "build_tiny_ltx_pipeline"]


def build_tiny_t5_tokenizer():
    """A T5 (sentencepiece-unigram) tokenizer over letters and word starts, built here and reloaded from disk."""
    from transformers import AutoTokenizer, T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in string.ascii_lowercase]
    pieces += [("\u2581" + c, -2.5) for c in string.ascii_lowercase]
    with tempfile.TemporaryDirectory() as folder:
        T5Tokenizer(vocab=pieces, extra_ids=0).save_pretrained(folder)
        return AutoTokenizer.from_pretrained(folder)


def build_tiny_wan_pipeline(folder: str | Path, seed: int = 0):
    """A tiny random WanImageToVideoPipeline shaped like Wan2.1 FLF2V, saved to ``folder`` and loaded back."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    folder = Path(folder)
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
    folder.mkdir(parents=True, exist_ok=True)
    pipe = WanImageToVideoPipeline(
        tokenizer=build_tiny_t5_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        image_processor=CLIPImageProcessor(crop_size=clip_size, size=clip_size),
        image_encoder=image_encoder,
        transformer=transformer,
    )
    pipe.save_pretrained(str(folder))
    return WanImageToVideoPipeline.from_pretrained(str(folder), local_files_only=True)


def build_tiny_ltx_pipeline(folder: str | Path, seed: int = 0):
    """A tiny random LTXConditionPipeline (VAE factor 4 in space and time), saved to ``folder`` and loaded back."""
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    folder = Path(folder)
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
    folder.mkdir(parents=True, exist_ok=True)
    pipe = LTXConditionPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                                tokenizer=build_tiny_t5_tokenizer(), transformer=transformer)
    pipe.save_pretrained(str(folder))
    return LTXConditionPipeline.from_pretrained(str(folder), local_files_only=True)
