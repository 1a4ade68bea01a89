"""PixelDancePipeline: text + first-frame (+ last-frame) instructions to video (arXiv 2311.10982).

A diffusers ``DiffusionPipeline`` (vae, text_encoder, tokenizer, unet, scheduler), so
``save_pretrained`` / ``from_pretrained``, schedulers and ``enable_model_cpu_offload`` work as in any
diffusers pipeline. What is PixelDance's own: the image instructions laid out as c_image and
concatenated with z_t on channels, and the tau schedule (the last frame guides only the first steps),
both defined once in ``pdedit.conditioning``.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
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
    "steps_to_run",
]

logger = logging.getLogger(__name__)

ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | Sequence[PIL.Image.Image | np.ndarray]

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


def steps_to_run(strength: float, num_steps: int) -> int:
    """Denoising steps run when starting from a noised source at ``strength``: ``round(strength * T)``.

    Halves round up, as for tau (``pdedit.conditioning.round_steps`` serves both).
    """
    return round_steps(strength, num_steps)


def encode_frames(vae: AutoencoderKL, frames: torch.Tensor, chunk_size: int = 8) -> torch.Tensor:
    """VAE latents (mean, scaled) of ``(N, 3, H, W)`` frames in [-1, 1], ``chunk_size`` frames at a time."""
    latents = []
    for chunk in frames.split(chunk_size):
        dist = vae.encode(chunk.to(device=vae.device, dtype=vae.dtype)).latent_dist
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
    frames = torch.cat([vae.decode(chunk.to(vae.dtype)).sample.float() for chunk in z.split(chunk_size)])
    return frames.reshape(b, f, *frames.shape[1:]).permute(0, 2, 1, 3, 4)  # (B, 3, F, H, W)


def _to_tensor_frames(images: ImageInput, name: str) -> torch.Tensor:
    """``(N, 3, H, W)`` float in [-1, 1] from PIL / uint8 (H, W, 3) / a list of them / a [-1, 1] tensor."""
    if isinstance(images, torch.Tensor):
        t = images.unsqueeze(0) if images.ndim == 3 else images
        if t.ndim != 4 or t.shape[1] != 3:
            raise BadInput(f"{name}: expected a (N, 3, H, W) tensor in [-1, 1], got shape {tuple(images.shape)}")
        return t.float()
    items = [images] if isinstance(images, (PIL.Image.Image, np.ndarray)) else list(images)
    if not items:
        raise BadInput(f"{name}: no frames given")
    arrays = []
    for item in items:
        arr = np.asarray(item.convert("RGB")) if isinstance(item, PIL.Image.Image) else np.asarray(item)
        if arr.ndim == 4:  # a stack (N, H, W, 3) inside a list: flatten it
            arrays.extend(arr)
            continue
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise BadInput(f"{name}: expected RGB frames (H, W, 3), got shape {arr.shape}")
        arrays.append(arr)
    stack = np.stack(arrays)  # (N, H, W, 3)
    if stack.dtype == np.uint8:
        stack = stack.astype(np.float32) / 255.0
    t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32)).permute(0, 3, 1, 2)  # (N, 3, H, W)
    return t * 2.0 - 1.0


def _resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize ``(N, 3, H, W)`` frames to (height, width) (a stretch; crop beforehand to keep aspect)."""
    if frames.shape[-2:] == (height, width):
        return frames
    return F.interpolate(frames, size=(height, width), mode="bilinear", antialias=True, align_corners=False)


class PixelDancePipeline(DiffusionPipeline):
    """PixelDance sampling: text prompt, first-frame and optional last-frame instructions to a video.

    Components: ``vae`` (AutoencoderKL), ``text_encoder`` (CLIPTextModel), ``tokenizer``
    (CLIPTokenizer), ``unet`` (PixelDanceUNet), ``scheduler`` (DDIM by default; see ``SCHEDULERS``).
    ``default_num_frames`` and ``default_fps`` are what the model was built or trained for; they are
    saved in model_index.json.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _callback_tensor_inputs = ["latents", "prompt_embeds", "c_image"]

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
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.video_processor = VideoProcessor(do_resize=False, vae_scale_factor=self.vae_scale_factor)

    @property
    def default_size(self) -> tuple[int, int]:
        """(W, H) the UNet was configured for: its sample_size times the VAE factor."""
        s = self.unet.config.sample_size
        h, w = (s, s) if isinstance(s, int) else tuple(s)
        return w * self.vae_scale_factor, h * self.vae_scale_factor

    def set_scheduler(self, name: str) -> None:
        """Swap the scheduler for one of ``SCHEDULERS`` (ddim, dpm++, euler, unipc), keeping the betas."""
        if name not in SCHEDULERS:
            raise BadInput(f"unknown scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")
        cls, overrides = SCHEDULERS[name]
        self.scheduler = cls.from_config(self.scheduler.config, **overrides)

    def encode_prompt(self, prompt: list[str], device: torch.device) -> torch.Tensor:
        """CLIP text embeddings ``(B, L, D)`` of ``prompt``, padded to the tokenizer's max length."""
        tokens = self.tokenizer(
            prompt,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        if any(len(ids) > self.tokenizer.model_max_length for ids in self.tokenizer(prompt).input_ids):
            logger.warning("prompt longer than %d tokens was truncated", self.tokenizer.model_max_length)
        return self.text_encoder(tokens.input_ids.to(device))[0]

    def check_inputs(
        self,
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
        callback_on_step_end_tensor_inputs: Sequence[str],
    ) -> None:
        """Raise BadInput naming the first value that cannot be used."""
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
        if strength < 1.0 and steps_to_run(strength, num_inference_steps) == 0:
            raise BadInput(f"strength {strength} x {num_inference_steps} steps rounds to 0 steps: raise either")
        if output_type not in OUTPUT_TYPES:
            raise BadInput(f"output_type {output_type!r} must be one of {OUTPUT_TYPES}")
        bad = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if bad:
            raise BadInput(f"callback tensor inputs {bad} not in {self._callback_tensor_inputs}")

    def prepare_c_image(
        self,
        first_frame: torch.Tensor,
        last_frame: torch.Tensor | None,
        num_frames: int,
        image_noise: float,
        generator: torch.Generator | None,
        chunk_size: int,
    ) -> torch.Tensor:
        """c_image ``(B, C, F, h, w)`` from instruction frames ``(B, 3, H, W)`` (§3.1), perturbed at image_noise."""
        if last_frame is None:
            f_first, f_last = encode_frames(self.vae, first_frame, chunk_size), None  # (B, C, h, w)
        else:  # one VAE pass for both instructions
            f_first, f_last = encode_frames(self.vae, torch.cat([first_frame, last_frame]), chunk_size).chunk(2)
        c_image = build_c_image(f_first, f_last, num_frames)  # (B, C, F, h, w)
        if image_noise > 0:
            # The noise is drawn on the generator's device so a CPU generator also seeds GPU runs.
            gen_device = generator.device if generator is not None else c_image.device
            c_image = perturb_c_image(c_image.to(gen_device), image_noise, generator).to(c_image.device)
        return c_image.to(self.unet.dtype)

    def prepare_extra_step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict[str, Any]:
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
        prompt: str | list[str],
        first_frame: ImageInput,
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
        generator: torch.Generator | None = None,
        eta: float = 0.0,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[[DiffusionPipeline, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        vae_chunk_size: int = 8,
    ) -> PixelDancePipelineOutput | tuple:
        """Generate videos from a text prompt and first/last-frame instructions.

        Args:
            prompt: the text instruction (one per video).
            first_frame: first-frame instruction: a PIL image, a uint8 (H, W, 3) array, a list of them
                (one per video), or a (B, 3, H, W) tensor in [-1, 1]; resized (stretched) to the output size.
            last_frame: optional last-frame instruction, same forms ("magic mode"); None = basic mode.
            negative_prompt: text for the unconditional branch of guidance; default "" (empty).
            num_frames: frames F per video; default the source video's length, else
                ``config.num_frames``.
            height, width: output size in pixels, multiples of the VAE factor; default the source
                video's size, else the UNet's configured size.
            num_inference_steps: T, the denoising steps of the full schedule (default 25).
            guidance_scale: classifier-free guidance on text (default 7.5); <= 1 runs the text branch only.
            tau: fraction of the steps run that see the last frame: the first ``round(tau * steps)``
                (PixelDance §3.2); 0 = never, 1 = always (default 1.0).
            image_noise: std of the noise added to the instruction latents in c_image (default 0).
            source_video: (F, H, W, 3) uint8 frames (array or list) or a (B, 3, F, H, W) tensor in
                [-1, 1]; with ``strength < 1`` sampling starts from it, noised (SDEdit).
            strength: 1.0 = start from pure noise; below 1 start from the source noised to the
                timestep of step ``T - round(strength * T)`` and run ``round(strength * T)`` steps.
            generator: torch.Generator for reproducible noise (same seed, same video).
            eta: DDIM eta (default 0, deterministic).
            output_type: "pil", "np" (float32 (B, F, H, W, 3) in [0, 1]), "pt" or "latent".
            return_dict: return a PixelDancePipelineOutput (True) or a tuple.
            callback_on_step_end: ``fn(pipe, step, t, tensors) -> dict`` after each step; a returned
                "latents" replaces the latents.
            callback_on_step_end_tensor_inputs: names passed to the callback (see _callback_tensor_inputs).
            vae_chunk_size: frames per VAE encode/decode call (memory does not grow with F).
        """
        device = self._execution_device
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        batch_size = len(prompts)

        # 1. Check inputs (and fill in defaults)
        first = _to_tensor_frames(first_frame, "first frame")
        last = _to_tensor_frames(last_frame, "last frame") if last_frame is not None else None
        source = None
        if source_video is not None and strength < 1.0:
            source = self._to_source_tensor(source_video)  # (B, 3, F, H, W)
        elif source_video is not None:
            logger.info("strength 1.0 starts from pure noise: the source video is not used")
        default_w, default_h = (source.shape[-1], source.shape[-2]) if source is not None else self.default_size
        height = height or default_h
        width = width or default_w
        num_frames = num_frames or (source.shape[2] if source is not None else self.config.num_frames)
        self.check_inputs(
            num_frames, height, width, num_inference_steps, guidance_scale, tau, image_noise, strength,
            source_video is not None, output_type, callback_on_step_end_tensor_inputs,
        )
        first = self._batch(_resize(first, height, width), batch_size, "first frame")
        last = self._batch(_resize(last, height, width), batch_size, "last frame") if last is not None else None
        if source is not None:
            if source.shape[2] != num_frames:
                raise BadInput(f"source video has {source.shape[2]} frames but {num_frames} were asked for")
            source = self._batch_video(source, batch_size, height, width)
        do_cfg = guidance_scale > 1.0

        # 2. Encode prompt: [uncond, cond] so one UNet call per step serves both guidance branches
        prompt_embeds = self.encode_prompt(prompts, device)  # (B, L, D)
        if do_cfg:
            negatives = negative_prompt if negative_prompt is not None else ""
            negatives = [negatives] * batch_size if isinstance(negatives, str) else list(negatives)
            if len(negatives) != batch_size:
                raise BadInput(f"{len(negatives)} negative prompts for {batch_size} prompts")
            prompt_embeds = torch.cat([self.encode_prompt(negatives, device), prompt_embeds])  # (2B, L, D)
        prompt_embeds = prompt_embeds.to(self.unet.dtype)

        # 3. Prepare timesteps (strength < 1: only the last round(strength * T) of them)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        if source is not None:
            t_start = num_inference_steps - steps_to_run(strength, num_inference_steps)
            timesteps = timesteps[t_start * self.scheduler.order :]
            if hasattr(self.scheduler, "set_begin_index"):
                self.scheduler.set_begin_index(t_start * self.scheduler.order)

        # 4. Prepare latents: pure noise, or the source latents noised to the first timestep (SDEdit)
        c = self.unet.config.out_channels
        shape = (batch_size, c, num_frames, height // self.vae_scale_factor, width // self.vae_scale_factor)
        noise = randn_tensor(shape, generator=generator, device=device, dtype=prompt_embeds.dtype)  # (B, C, F, h, w)
        if source is not None:
            z0 = encode_video(self.vae, source.to(device), vae_chunk_size).to(noise.dtype)
            latents = self.scheduler.add_noise(z0, noise, timesteps[:1])
        else:
            latents = noise * self.scheduler.init_noise_sigma

        # 5. Encode image instructions: c_image = [f_first, 0 x (F-2), f_last] (§3.1); drawn after z_T so
        #    the image noise does not change the starting noise of a seed
        first = first.to(device)
        last = last.to(device) if last is not None else None
        c_image = self.prepare_c_image(first, last, num_frames, image_noise, generator, vae_chunk_size)
        # PixelDance §3.2: the last frame guides only the first round(tau * steps) of the steps run.
        schedule = last_frame_schedule(tau, len(timesteps))
        c_image_no_last = drop_last_frame(c_image, False)
        if do_cfg:  # the uncond branch keeps the image instructions: guidance is on text only
            c_image = torch.cat([c_image] * 2)  # (2B, C, F, h, w)
            c_image_no_last = torch.cat([c_image_no_last] * 2)

        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        # 6. Denoising loop: one UNet call per step, cond and uncond batched
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                c_step = c_image if schedule[i] else c_image_no_last
                z_in = torch.cat([latents] * 2) if do_cfg else latents
                z_in = self.scheduler.scale_model_input(z_in, t)
                unet_in = torch.cat([z_in, c_step], dim=1)  # (2B or B, 2C, F, h, w)
                noise_pred = self.unet(unet_in, t, encoder_hidden_states=prompt_embeds, return_dict=False)[0]
                if do_cfg:
                    noise_uncond, noise_text = noise_pred.chunk(2)
                    noise_pred = noise_uncond + guidance_scale * (noise_text - noise_uncond)
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs).prev_sample

                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": prompt_embeds, "c_image": c_step}
                    out = callback_on_step_end(self, i, t, {k: tensors[k] for k in callback_on_step_end_tensor_inputs})
                    latents = (out or {}).get("latents", latents)
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

    def _to_source_tensor(self, source_video: ImageInput) -> torch.Tensor:
        """``(B, 3, F, H, W)`` in [-1, 1] from uint8 frames (F, H, W, 3) or a 5-D tensor."""
        if isinstance(source_video, torch.Tensor) and source_video.ndim == 5:
            return source_video.float()
        frames = _to_tensor_frames(source_video, "source video")  # (F, 3, H, W)
        return frames.permute(1, 0, 2, 3).unsqueeze(0)  # (1, 3, F, H, W)

    @staticmethod
    def _batch(frames: torch.Tensor, batch_size: int, name: str) -> torch.Tensor:
        """Repeat a single instruction over the batch, or check there is one per video."""
        if frames.shape[0] == batch_size:
            return frames
        if frames.shape[0] == 1:
            return frames.expand(batch_size, -1, -1, -1)
        raise BadInput(f"{name}: {frames.shape[0]} images for {batch_size} prompts (give 1 or {batch_size})")

    @staticmethod
    def _batch_video(video: torch.Tensor, batch_size: int, height: int, width: int) -> torch.Tensor:
        """Resize a (B, 3, F, H, W) source video to the output size and repeat it over the batch."""
        b, _, f, h, w = video.shape
        if (h, w) != (height, width):
            flat = video.permute(0, 2, 1, 3, 4).reshape(b * f, 3, h, w)
            video = _resize(flat, height, width).reshape(b, f, 3, height, width).permute(0, 2, 1, 3, 4)
        if b == 1 and batch_size > 1:
            video = video.expand(batch_size, -1, -1, -1, -1)
        elif b != batch_size:
            raise BadInput(f"source video: batch of {b} for {batch_size} prompts")
        return video
