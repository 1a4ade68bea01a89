"""PixelDancePipeline: text + first-frame (+ last-frame) instructions to video (arXiv 2311.10982).

A diffusers ``DiffusionPipeline`` (vae, text_encoder, tokenizer, unet, scheduler) with diffusers' conventions:
``save_pretrained`` / ``from_pretrained``, schedulers, offloading, FreeU, VAE slicing and tiling and fused QKV
(``StableDiffusionMixin``), precomputed prompt embeddings and starting latents, ``encode_prompt`` and
``prepare_latents``, and callbacks that may change latents, embeddings or guidance mid-run. What is
PixelDance's own: the image instructions laid out as c_image and concatenated with z_t on channels, and the
tau schedule (the last frame guides only the first steps), both defined once in ``pdedit.conditioning``.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.pipelines.pipeline_utils import StableDiffusionMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from transformers import CLIPTextModel, CLIPTokenizer

from pdedit.conditioning import build_c_image, drop_last_frame, last_frame_schedule, perturb_c_image, round_steps
from pdedit.errors import BadInput
from pdedit.models.unet import PixelDanceUNet
from pdedit.models.pixel_space import PixelSpaceVAE

__all__ = [
    "PixelDancePipeline",
    "PixelDancePipelineOutput",
    "SCHEDULERS",
    "encode_frames",
    "encode_video",
    "decode_video",
]

logger = logging.getLogger(__name__)

# An image instruction: a PIL image, a uint8 (H, W, 3) array, a float array or tensor in [0, 1] (diffusers'
# image forms), or a list of them (one per prompt).
ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | Sequence[PIL.Image.Image | np.ndarray | torch.Tensor]
Generators = torch.Generator | list[torch.Generator] | None

# name -> (scheduler class, config overrides); every one reads the betas of the saved scheduler config.
SCHEDULERS: dict[str, tuple[type, dict[str, Any]]] = {
    "ddim": (DDIMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "euler": (EulerDiscreteScheduler, {}),
    "unipc": (UniPCMultistepScheduler, {}),
}

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class PixelDancePipelineOutput(BaseOutput):
    """Output of PixelDancePipeline: ``frames`` as (B, F, H, W, 3) float32 in [0, 1] for "np",
    a list (per video) of lists of PIL images for "pil", (B, F, 3, H, W) for "pt",
    or latents (B, C, F, h, w) for "latent"."""

    frames: Any


def encode_frames(vae: AutoencoderKL, frames: torch.Tensor, chunk_size: int = 8) -> torch.Tensor:
    """VAE latents (mean, scaled) of ``(N, 3, H, W)`` frames in [-1, 1], ``chunk_size`` frames at a time."""
    latents = []
    device, dtype = vae.device, vae.dtype  # each a walk over the modules: read once
    for chunk in frames.split(chunk_size):
        dist = vae.encode(chunk.to(device=device, dtype=dtype)).latent_dist
        latents.append(dist.mode())  # the mean: an instruction is encoded deterministically
    z = torch.cat(latents)  # (N, C, h, w)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (z - shift) * vae.config.scaling_factor


def encode_video(vae: AutoencoderKL, video: torch.Tensor, chunk_size: int = 8) -> torch.Tensor:
    """VAE latents ``(B, C, F, h, w)`` of a video ``(B, 3, F, H, W)`` in [-1, 1], encoded in frame chunks."""
    b, _, f, h, w = video.shape
    frames = video.permute(0, 2, 1, 3, 4).reshape(b * f, 3, h, w)  # (B*F, 3, H, W)
    z = encode_frames(vae, frames, chunk_size)  # (B*F, C, h', w')
    return z.reshape(b, f, *z.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, C, F, h', w')


def decode_video(vae: AutoencoderKL, latents: torch.Tensor, chunk_size: int = 8) -> torch.Tensor:
    """Frames ``(B, 3, F, H, W)`` float32 in [-1, 1] from latents ``(B, C, F, h, w)``, decoded in chunks."""
    b, c, f, h, w = latents.shape
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    z = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w) / vae.config.scaling_factor + shift
    dtype = vae.dtype  # a walk over the modules: read once
    frames = torch.cat([vae.decode(chunk.to(dtype)).sample.float() for chunk in z.split(chunk_size)])
    return frames.reshape(b, f, *frames.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, 3, F, H, W)


def _uint8_as_pil(images: Any) -> Any:
    """uint8 arrays (the project's frame type) as PIL images, the rest as given.

    diffusers' processors read every array as floats in [0, 1]; a PIL image is how 8-bit pixels go in.
    """
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        return PIL.Image.fromarray(images) if images.ndim <= 3 else [PIL.Image.fromarray(a) for a in images]
    if isinstance(images, (list, tuple)):
        return [_uint8_as_pil(item) for item in images]
    return images


def _per_video(x: torch.Tensor, num_prompts: int, num_videos_per_prompt: int, name: str) -> torch.Tensor:
    """Repeat a batch given once or once per prompt to one item per video (prompt-major, as the embeddings)."""
    if x.shape[0] == 1:
        return x.expand(num_prompts * num_videos_per_prompt, *x.shape[1:])
    if x.shape[0] == num_prompts:
        return x.repeat_interleave(num_videos_per_prompt, dim=0)
    raise BadInput(f"{name}: {x.shape[0]} given for {num_prompts} prompts (give 1 or {num_prompts})")


class PixelDancePipeline(DiffusionPipeline, StableDiffusionMixin):
    """PixelDance sampling: text prompt, first-frame and optional last-frame instructions to a video.

    Components: ``vae`` (AutoencoderKL), ``text_encoder`` (CLIPTextModel), ``tokenizer``
    (CLIPTokenizer), ``unet`` (PixelDanceUNet), ``scheduler`` (DDIM by default; see ``SCHEDULERS``).
    ``num_frames`` and ``fps`` are what the model was built or trained for; they are saved in
    model_index.json. Image inputs take diffusers' forms (PIL, float arrays and tensors in [0, 1]) and
    the project's uint8 (H, W, 3) frames.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds", "c_image"]

    def __init__(
        self,
        vae: AutoencoderKL | PixelSpaceVAE,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: PixelDanceUNet,
        scheduler: DDIMScheduler,
        num_frames: int = 16,
        fps: int = 8,
    ):
        super().__init__()
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
        self.register_to_config(num_frames=num_frames, fps=fps)
        # Built from its text components alone (to run encode_prompt), a pipeline has no VAE: Stable Diffusion's 8.
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 8
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True)

    @property
    def default_size(self) -> tuple[int, int]:
        """(W, H) the UNet was configured for: its sample_size times the VAE factor."""
        s = self.unet.config.sample_size
        h, w = (s, s) if isinstance(s, int) else tuple(s)
        return w * self.vae_scale_factor, h * self.vae_scale_factor

    @property
    def guidance_scale(self) -> float:
        """The guidance scale of the running call; a step-end callback may change ``_guidance_scale``."""
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        """Whether this step runs the unconditional branch too (guidance scale above 1)."""
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        """Denoising steps of the running (or last) call: fewer than asked for when strength < 1."""
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """Set ``_interrupt`` from a callback to skip the remaining steps (the latents so far are decoded)."""
        return self._interrupt

    @property
    def cross_attention_kwargs(self) -> dict[str, Any] | None:
        """Passed to the UNet's attention processors on every step."""
        return self._cross_attention_kwargs

    def set_scheduler(self, name: str) -> None:
        """Swap the scheduler for one of ``SCHEDULERS`` (ddim, dpm++, euler, unipc), keeping the betas."""
        if name not in SCHEDULERS:
            raise BadInput(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")
        cls, overrides = SCHEDULERS[name]
        self.scheduler = cls.from_config(self.scheduler.config, **overrides)

    def _embed_text(self, texts: list[str], device: torch.device) -> torch.Tensor:
        """CLIP text embeddings ``(N, L, D)`` of ``texts``, padded (and truncated) to the tokenizer's max length."""
        max_length = self.tokenizer.model_max_length
        tokens = self.tokenizer(texts, padding="max_length", max_length=max_length, truncation=True,
                                return_tensors="pt")
        if any(len(ids) > max_length for ids in self.tokenizer(texts).input_ids):
            logger.warning("prompt longer than %d tokens was truncated", max_length)
        return self.text_encoder(tokens.input_ids.to(device))[0]

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device | None = None,
        num_videos_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Text embeddings ``(B * num_videos_per_prompt, L, D)`` of the prompts and, under guidance, the negatives.

        Args:
            prompt: the text instruction(s); None when ``prompt_embeds`` is given.
            device: where the embeddings go; default the pipeline's execution device.
            num_videos_per_prompt: each embedding is repeated this many times (prompt-major).
            do_classifier_free_guidance: also return the negative embeddings (else None).
            negative_prompt: text of the unconditional branch, one or one per prompt; default "".
            prompt_embeds: precomputed ``(B, L, D)`` embeddings, used as they are instead of ``prompt``.
            negative_prompt_embeds: precomputed negative embeddings, instead of ``negative_prompt``.
        """
        device = device or self._execution_device
        if prompt_embeds is None and prompt is None:
            raise BadInput("give a prompt or prompt_embeds")
        prompts = None if prompt_embeds is not None else [prompt] if isinstance(prompt, str) else list(prompt)
        batch_size = len(prompts) if prompts is not None else prompt_embeds.shape[0]
        negatives = None
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            negatives = negative_prompt if isinstance(negative_prompt, list) else [negative_prompt or ""] * batch_size
            if len(negatives) != batch_size:
                raise BadInput(f"{len(negatives)} negative prompts for {batch_size} prompts: give 1 or {batch_size}")
        # One text-encoder call for whatever text is left to encode, prompts and negatives together.
        texts = (prompts or []) + (negatives or [])
        if texts:
            embedded = self._embed_text(texts, device)  # (len(texts), L, D)
            if prompts is not None:
                prompt_embeds, embedded = embedded[:batch_size], embedded[batch_size:]
            if negatives is not None:
                negative_prompt_embeds = embedded
        if self.text_encoder is not None:
            dtype = self.text_encoder.dtype
        else:
            dtype = self.unet.dtype if self.unet is not None else prompt_embeds.dtype
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype).repeat_interleave(num_videos_per_prompt, dim=0)
        if not do_classifier_free_guidance:
            negative_prompt_embeds = None
        elif negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(device=device, dtype=dtype)
            negative_prompt_embeds = negative_prompt_embeds.repeat_interleave(num_videos_per_prompt, dim=0)
        return prompt_embeds, negative_prompt_embeds

    def check_inputs(
        self,
        prompt: str | list[str] | None,
        first_frame: ImageInput | None,
        num_frames: int,
        height: int,
        width: int,
        num_inference_steps: int,
        guidance_scale: float,
        tau: float,
        image_noise: float,
        strength: float,
        has_source: bool,
        output_type: str,
        num_videos_per_prompt: int,
        negative_prompt: str | list[str] | None,
        prompt_embeds: torch.Tensor | None,
        negative_prompt_embeds: torch.Tensor | None,
        callback_on_step_end_tensor_inputs: Sequence[str],
    ) -> None:
        """Raise BadInput (a ValueError, as diffusers callers expect) naming the first value that cannot be used."""
        if (prompt is None) == (prompt_embeds is None):
            raise BadInput("give either prompt or prompt_embeds, not both and not neither")
        if prompt is not None and not isinstance(prompt, (str, list)):
            raise BadInput(f"prompt must be a str or a list of str, got {type(prompt).__name__}")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise BadInput("give either negative_prompt or negative_prompt_embeds, not both")
        if prompt_embeds is not None and prompt_embeds.ndim != 3:
            raise BadInput(f"prompt_embeds must be (B, L, D), got shape {tuple(prompt_embeds.shape)}")
        if (prompt_embeds is not None and negative_prompt_embeds is not None
                and prompt_embeds.shape != negative_prompt_embeds.shape):
            raise BadInput(f"prompt_embeds {tuple(prompt_embeds.shape)} and negative_prompt_embeds "
                           f"{tuple(negative_prompt_embeds.shape)} must have one shape")
        if first_frame is None:
            raise BadInput("a first-frame instruction is required: pass first_frame")
        if num_frames < 2:
            raise BadInput(f"frames must be >= 2 (first and last frame), got {num_frames}")
        if height % self.vae_scale_factor or width % self.vae_scale_factor or height <= 0 or width <= 0:
            raise BadInput(f"size {width}x{height} must be positive multiples of {self.vae_scale_factor}")
        if num_inference_steps < 1:
            raise BadInput(f"steps must be >= 1, got {num_inference_steps}")
        if guidance_scale < 0:
            raise BadInput(f"guidance must be >= 0, got {guidance_scale}")
        if not 0.0 <= tau <= 1.0:
            raise BadInput(f"tau is the fraction of steps that see the last frame: must be in [0, 1], got {tau}")
        if image_noise < 0:
            raise BadInput(f"image noise must be >= 0, got {image_noise}")
        if not 0.0 < strength <= 1.0:
            raise BadInput(f"strength must be in (0, 1], got {strength}")
        if strength < 1.0 and not has_source:
            raise BadInput(f"strength {strength} < 1 starts from a source video: pass source_video")
        if strength < 1.0 and round_steps(strength, num_inference_steps) == 0:
            raise BadInput(f"strength {strength} x {num_inference_steps} steps rounds to 0 steps: raise either")
        if output_type not in OUTPUT_TYPES:
            raise BadInput(f"output_type {output_type!r} must be one of {OUTPUT_TYPES}")
        if num_videos_per_prompt < 1:
            raise BadInput(f"num_videos_per_prompt must be >= 1, got {num_videos_per_prompt}")
        bad = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if bad:
            raise BadInput(f"callback tensor inputs {bad} not in {self._callback_tensor_inputs}")

    def preprocess_frames(self, images: ImageInput, name: str, height: int, width: int) -> torch.Tensor:
        """``(N, 3, H, W)`` in [-1, 1] at the output size, through the VideoProcessor (stretched, not cropped)."""
        try:
            frames = self.video_processor.preprocess(_uint8_as_pil(images), height=height, width=width)
        except (ValueError, TypeError) as err:
            raise BadInput(f"{name}: {err}; give a PIL image, a uint8 (H, W, 3) array, a [0, 1] float array or "
                           f"(3, H, W) tensor, or a list of them") from err
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise BadInput(f"{name}: expected RGB frames, got shape {tuple(frames.shape)}")
        return frames

    def preprocess_source(self, video: ImageInput, height: int | None, width: int | None) -> torch.Tensor:
        """``(B, 3, F, H, W)`` in [-1, 1] from a source video: frames (F, H, W, 3), a list, or diffusers' forms."""
        try:
            return self.video_processor.preprocess_video(_uint8_as_pil(video), height=height, width=width)
        except (ValueError, TypeError) as err:
            raise BadInput(f"source video: {err}; give its frames as uint8 (H, W, 3) arrays or PIL images") from err

    def prepare_c_image(
        self,
        first_frame: torch.Tensor,
        last_frame: torch.Tensor | None,
        num_frames: int,
        image_noise: float,
        generator: Generators,
        chunk_size: int,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """c_image ``(B, C, F, h, w)`` in ``dtype`` from instruction frames ``(B, 3, H, W)`` (§3.1), perturbed at
        image_noise."""
        if last_frame is None:
            f_first, f_last = encode_frames(self.vae, first_frame, chunk_size), None  # (B, C, h, w)
        else:  # one VAE pass for both instructions
            f_first, f_last = encode_frames(self.vae, torch.cat([first_frame, last_frame]), chunk_size).chunk(2)
        c_image = build_c_image(f_first, f_last, num_frames)  # (B, C, F, h, w)
        if image_noise > 0:
            # Each video's noise is drawn from its own generator, on that generator's device, so a CPU
            # generator also seeds GPU runs and a video of a batch matches the same seed run alone.
            if isinstance(generator, list):
                c_image = torch.cat([perturb_c_image(c.to(g.device), image_noise, g).to(c_image.device)
                                     for c, g in zip(c_image.split(1), generator)])
            else:
                gen_device = generator.device if generator is not None else c_image.device
                c_image = perturb_c_image(c_image.to(gen_device), image_noise, generator).to(c_image.device)
        return c_image.to(dtype)

    def prepare_latents(
        self,
        batch_size: int,
        num_channels_latents: int,
        num_frames: int,
        height: int,
        width: int,
        dtype: torch.dtype,
        device: torch.device,
        generator: Generators,
        latents: torch.Tensor | None = None,
        source_latents: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z_T ``(B, C, F, h, w)``: the given or drawn noise, scaled for the scheduler, or (SDEdit) added to the
        source latents at ``timestep``."""
        shape = (batch_size, num_channels_latents, num_frames, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise BadInput(f"{len(generator)} generators for {batch_size} videos: give one per video, or one")
        if latents is None:
            noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise BadInput(f"latents have shape {tuple(latents.shape)}, but {shape} are needed for {batch_size} "
                           f"videos of {num_frames} frames at {width}x{height}")
        else:
            noise = latents.to(device=device, dtype=dtype)
        if source_latents is None:
            return noise * self.scheduler.init_noise_sigma
        return self.scheduler.add_noise(source_latents.to(noise.dtype), noise, timestep)

    def prepare_extra_step_kwargs(self, generator: Generators, eta: float) -> dict[str, Any]:
        """The ``eta`` / ``generator`` arguments that this scheduler's ``step`` accepts."""
        params = set(inspect.signature(self.scheduler.step).parameters)
        kwargs: dict[str, Any] = {}
        if "eta" in params:
            kwargs["eta"] = eta
        if "generator" in params:
            kwargs["generator"] = generator
        return kwargs

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        first_frame: ImageInput | None = None,
        last_frame: ImageInput | None = None,
        negative_prompt: str | list[str] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 7.5,
        tau: float = 1.0,
        image_noise: float = 0.0,
        source_video: ImageInput | None = None,
        strength: float = 1.0,
        num_videos_per_prompt: int = 1,
        generator: Generators = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[[DiffusionPipeline, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        vae_chunk_size: int = 8,
    ) -> PixelDancePipelineOutput | tuple:
        """Generate videos from a text prompt and first/last-frame instructions.

        Args:
            prompt: the text instruction, or one per video batch entry; None when ``prompt_embeds`` is given.
            first_frame: first-frame instruction (required): a PIL image, a uint8 (H, W, 3) array, a float
                array or (3, H, W) tensor in [0, 1] (diffusers' image forms), or a list of them (one per
                prompt); resized (stretched) to the output size.
            last_frame: optional last-frame instruction, same forms ("magic mode"); None = basic mode.
            negative_prompt: text for the unconditional branch of guidance; default "" (empty).
            num_frames: frames F per video; default the source video's length, else
                ``self.config.num_frames`` (what the model was built for).
            height, width: output size in pixels (multiples of the VAE factor); default the source video's
                size, else the UNet's sample size times the VAE factor.
            num_inference_steps: denoising steps T (with strength < 1, only round(strength * T) run).
            guidance_scale: classifier-free guidance on the text; <= 1 runs the text branch only.
            tau: fraction of the steps run that see the last frame (PixelDance §3.2); 0 ignores it.
            image_noise: std of the noise added to the image instructions in latent space (0 = none).
            source_video: frames of a video to start from (SDEdit) when ``strength`` < 1: uint8 (H, W, 3)
                arrays or PIL images, one video, or diffusers' video forms.
            strength: 1.0 starts from pure noise; lower keeps more of ``source_video``.
            num_videos_per_prompt: videos generated for each prompt (each with its own noise).
            generator: torch generator, or one per video, for reproducible noise.
            latents: starting noise ``(B * num_videos_per_prompt, C, F, h, w)`` instead of drawing it (with
                strength < 1, the noise added to the source latents).
            prompt_embeds: precomputed text embeddings ``(B, L, D)`` (see ``encode_prompt``) instead of prompt.
            negative_prompt_embeds: precomputed embeddings for the unconditional branch.
            eta: DDIM eta (0 = deterministic); ignored by other schedulers.
            output_type: "pil", "np", "pt" or "latent".
            return_dict: return a PixelDancePipelineOutput (True) or a tuple.
            cross_attention_kwargs: passed to the UNet's attention processors.
            callback_on_step_end: ``fn(pipe, step, t, tensors) -> dict`` after each step; a returned
                "latents", "prompt_embeds", "negative_prompt_embeds" or "c_image" (the instruction condition
                with its last frame) replaces it for the next steps, and ``pipe._guidance_scale`` may be changed
                (the guidance then applies from the next step) and ``pipe._interrupt`` set.
            callback_on_step_end_tensor_inputs: names passed to the callback (see _callback_tensor_inputs).
            vae_chunk_size: frames per VAE encode/decode call (memory does not grow with F).
        """
        # 1. Check inputs (sizes default to the source video's, else the model's)
        source = None
        if source_video is not None and strength < 1.0:
            source = self.preprocess_source(source_video, height, width)  # (B, 3, F, H, W)
        elif source_video is not None:
            logger.info("strength 1.0 starts from pure noise: the source video is not used")
        default_w, default_h = (source.shape[-1], source.shape[-2]) if source is not None else self.default_size
        height = height or default_h
        width = width or default_w
        num_frames = num_frames or (source.shape[2] if source is not None else self.config.num_frames)
        self.check_inputs(
            prompt, first_frame, num_frames, height, width, num_inference_steps, guidance_scale, tau, image_noise,
            strength, source_video is not None, output_type, num_videos_per_prompt, negative_prompt, prompt_embeds,
            negative_prompt_embeds, callback_on_step_end_tensor_inputs,
        )
        if source is not None and source.shape[2] != num_frames:
            raise BadInput(f"source video has {source.shape[2]} frames but {num_frames} were asked for")
        self._guidance_scale = guidance_scale
        self._cross_attention_kwargs = cross_attention_kwargs
        self._interrupt = False
        device = self._execution_device
        num_prompts = len(prompt) if isinstance(prompt, list) else 1 if prompt is not None else prompt_embeds.shape[0]
        batch_size = num_prompts * num_videos_per_prompt

        # 2. Encode prompt (and, under guidance, the negatives)
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt, device, num_videos_per_prompt, self.do_classifier_free_guidance, negative_prompt,
            prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds,
        )
        dtype = self.unet.dtype  # a walk over the UNet's modules: read once
        prompt_embeds = prompt_embeds.to(dtype)  # (B, L, D)
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(dtype)

        # 3. Prepare timesteps (strength < 1: only the last round(strength * T) of them)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        if source is not None:
            t_start = num_inference_steps - round_steps(strength, num_inference_steps)
            timesteps = timesteps[t_start * self.scheduler.order :]
            if hasattr(self.scheduler, "set_begin_index"):
                self.scheduler.set_begin_index(t_start * self.scheduler.order)
        self._num_timesteps = len(timesteps)

        # 4. Prepare latents: pure noise, or the source latents noised to the first timestep (SDEdit)
        source_latents = None
        if source is not None:
            source = _per_video(source, num_prompts, num_videos_per_prompt, "source video")
            source_latents = encode_video(self.vae, source.to(device), vae_chunk_size)  # (B, C, F, h, w)
        latents = self.prepare_latents(
            batch_size, self.unet.config.out_channels, num_frames, height, width, dtype, device,
            generator, latents, source_latents, timesteps[:1],
        )  # (B, C, F, h, w)

        # 5. Encode image instructions: c_image = [f_first, 0 x (F-2), f_last] (§3.1); after z_T so that the
        #    image noise does not change the starting noise of a seed
        first = _per_video(self.preprocess_frames(first_frame, "first frame", height, width), num_prompts,
                           num_videos_per_prompt, "first frame")
        last = None
        if last_frame is not None:
            last = _per_video(self.preprocess_frames(last_frame, "last frame", height, width), num_prompts,
                              num_videos_per_prompt, "last frame")
            last = last.to(device)
        c_image = self.prepare_c_image(first.to(device), last, num_frames, image_noise, generator, vae_chunk_size,
                                       dtype)
        c_image_no_last = drop_last_frame(c_image, False)
        # PixelDance §3.2: the last frame guides only the first round(tau * steps) of the steps run.
        schedule = last_frame_schedule(tau, len(timesteps))
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        # 6. Denoising loop: one UNet call per step, the unconditional and text branches batched
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                c_step = c_image if schedule[i] else c_image_no_last
                unet_in = torch.cat([self.scheduler.scale_model_input(latents, t), c_step], dim=1)  # (B, 2C, F, h, w)
                text = prompt_embeds
                if self.do_classifier_free_guidance:
                    if negative_prompt_embeds is None:
                        raise BadInput("guidance was raised above 1 in a run that started without it: the callback "
                                       "must also return negative_prompt_embeds")
                    # the uncond branch keeps the image instructions: guidance is on text only
                    unet_in = torch.cat([unet_in, unet_in])  # (2B, 2C, F, h, w)
                    text = torch.cat([negative_prompt_embeds, prompt_embeds])  # (2B, L, D)
                noise_pred = self.unet(unet_in, t, encoder_hidden_states=text,
                                       cross_attention_kwargs=self.cross_attention_kwargs, return_dict=False)[0]
                if self.do_classifier_free_guidance:
                    noise_uncond, noise_text = noise_pred.chunk(2)
                    noise_pred = noise_uncond + self.guidance_scale * (noise_text - noise_uncond)
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs).prev_sample

                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": prompt_embeds,
                               "negative_prompt_embeds": negative_prompt_embeds, "c_image": c_image}
                    asked = {k: tensors[k] for k in callback_on_step_end_tensor_inputs}
                    outputs = callback_on_step_end(self, i, t, asked) or {}  # a watching callback may return nothing
                    latents = outputs.pop("latents", latents)
                    prompt_embeds = outputs.pop("prompt_embeds", prompt_embeds)
                    negative_prompt_embeds = outputs.pop("negative_prompt_embeds", negative_prompt_embeds)
                    returned_c_image = outputs.pop("c_image", c_image)
                    if returned_c_image is not c_image:
                        c_image, c_image_no_last = returned_c_image, drop_last_frame(returned_c_image, False)
                progress_bar.update()

        # 7. Decode in frame chunks
        if output_type == "latent":
            video = latents
        else:
            frames = decode_video(self.vae, latents, vae_chunk_size)  # (B, 3, F, H, W) in [-1, 1]
            video = self.video_processor.postprocess_video(frames, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (video,)
        return PixelDancePipelineOutput(frames=video)
