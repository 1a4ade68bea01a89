"""The wan engine: Wan2.1 FLF2V (diffusers ``WanImageToVideoPipeline`` with ``last_image``) under the tau schedule.

Wan conditions the way PixelDance does (arXiv 2311.10982, §3.1): the VAE latents of
``[first, zeros, last]`` and a mask of the given frames are concatenated with the noisy latent on
channels, and the CLIP features of both images join the text in cross-attention. The stock pipeline
shows the last frame in every step, so clips "morph in" to it at the end. Here the last frame guides
only the first ``round(tau * T)`` steps (PixelDance §3.2, ``pdedit.conditioning.last_frame_schedule``);
after that the transformer sees the condition *without* the last frame:

- its latent frames and mask entries: what the pipeline's own ``prepare_latents`` builds with
  ``last_image=None`` (first frame, then zeros, VAE-encoded; mask on the first frame only);
- its share of the CLIP image embedding: zeroed (``pdedit.conditioning.drop_last_frame``, the
  instruction-dropping of PixelDance's training, applied to the two image "frames").

How: the pipeline is called as it is, never copied. Its ``prepare_latents`` is wrapped for the call to
build the without-last condition once (a second call with the same noise, so the random stream is
untouched), ``callback_on_step_end`` tracks the step, and a forward pre-hook on the transformer swaps the
condition channels and the image embedding after step ``k``. With tau = 1 nothing is installed: the
output is the stock pipeline's, bit for bit.

strength < 1 (SDEdit): the scheduler's timesteps are cut to the last ``round(strength * T)`` ones and the
initial latents are the source clip's VAE latents noised to that point with the scheduler's own
``scale_noise`` (flow matching: ``sigma * noise + (1 - sigma) * x0``); the noise is the pipeline's.

Wan renders ``4k + 1`` frames at multiples of 16; keyframes other than first and last are not supported
(use the ltx engine).
"""

from __future__ import annotations

import inspect
import logging
from contextlib import ExitStack
from typing import Any

import numpy as np
import torch

from pdedit.conditioning import drop_last_frame, last_frame_schedule
from pdedit.engines.job import refuse_keyframes
from pdedit.engines.open_models import (
    OpenModelEngine,
    RenderPlan,
    StepTracker,
    frames_to_pil,
    load_open_pipeline,
    patched,
)
from pdedit.errors import BadInput, Unsupported

logger = logging.getLogger(__name__)

__all__ = ["WanEngine", "drop_last_image_embeds"]


def drop_last_image_embeds(image_embeds: torch.Tensor) -> torch.Tensor:
    """Zero the last image's share of Wan FLF2V's CLIP embedding ``(2B, S, D)`` laid out [first, last] per video."""
    b2, s, d = image_embeds.shape
    as_frames = image_embeds.reshape(b2 // 2, 2, s, d).unsqueeze(1)  # (B, 1, 2, S, D): two image "frames"
    return drop_last_frame(as_frames, False).reshape(b2, s, d)


class WanEngine(OpenModelEngine):
    """Engine ``wan``: Wan2.1 FLF2V (or I2V, first frame only) from a local diffusers folder.

    Args: as ``OpenModelEngine`` (model, device, dtype, offload, vae_tiling).
    """

    name = "wan"

    def _load(self) -> Any:
        """Load the pipeline; the VAE and CLIP image encoder stay float32, as diffusers advises for Wan."""
        from diffusers import WanImageToVideoPipeline

        dtypes = {"default": self.dtype, "vae": torch.float32, "image_encoder": torch.float32}
        pipe = load_open_pipeline(WanImageToVideoPipeline, self.model, self.name, dtypes)
        if pipe.config.expand_timesteps:
            raise Unsupported(f"{self.model} is a Wan2.2 TI2V model (first frame in the latent, no last-frame "
                              f"condition): use Wan2.1 FLF2V, {self.model} cannot impose a last frame")
        return pipe

    def _grid(self) -> tuple[int, int]:
        """4k+1 frames; sizes in multiples of VAE factor x patch (16)."""
        pipe = self.pipe
        transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        return pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial * transformer.config.patch_size[1]

    def _transformers(self) -> list[torch.nn.Module]:
        """The denoisers (Wan2.2 A14B has two: high- and low-noise)."""
        return [t for t in (self.pipe.transformer, self.pipe.transformer_2) if t is not None]

    def _takes_two_images(self) -> bool:
        """FLF2V: the CLIP embedding carries [first, last] (a learned position embedding over both)."""
        config = self._transformers()[0].config
        return config.image_dim is not None and config.pos_embed_seq_len is not None

    def _takes_last_frame(self) -> bool:
        """Whether the model was trained with a last-frame condition (FLF2V, or Wan2.2 without CLIP)."""
        return self._takes_two_images() or self._transformers()[0].config.image_dim is None

    def _activation_bytes(self, plan: RenderPlan) -> int:
        """One transformer call (batch 1: Wan runs cond and uncond apart) or a VAE tile decode, the larger."""
        pipe = self.pipe
        config = self._transformers()[0].config
        w, h = plan.model_size
        patch = config.patch_size
        tokens = ((plan.model_frames - 1) // pipe.vae_scale_factor_temporal + 1) * (h // (8 * patch[1])) * (
            w // (8 * patch[2]))
        dim = config.num_attention_heads * config.attention_head_dim
        bytes_per = torch.finfo(self.dtype).bits // 8
        transformer = tokens * (4 * dim + config.ffn_dim) * bytes_per * 2
        tile_h, tile_w = (min(h, 256), min(w, 256)) if self.vae_tiling else (h, w)
        # The causal VAE decodes one latent frame (4 frames) at a time; full-resolution maps have ~2x base_dim
        # channels, float32, a few alive at once.
        vae = tile_h * tile_w * 4 * pipe.vae.config.base_dim * 2 * 4 * 4
        return max(transformer, vae)

    def _check_job(self, job: Any) -> None:
        """Wan takes a first and a last frame only; the last only on FLF2V models."""
        refuse_keyframes(self.name, job.keyframes)
        if job.last is not None and not self._takes_last_frame():
            raise Unsupported(f"{self.model} is an image-to-video Wan model without a last-frame condition: "
                              f"use Wan2.1 FLF2V (Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers) or drop the last frame")
        if job.image_noise > 0:
            raise Unsupported(f"--image-noise {job.image_noise}: the wan engine has no image-condition noise; "
                              f"use 0 (or the ltx engine, which maps it to its image_cond_noise_scale)")

    def _generate(self, job: Any, plan: RenderPlan) -> np.ndarray:
        """Run WanImageToVideoPipeline with the tau schedule (and SDEdit start) imposed."""
        first = frames_to_pil([job.first])[0]
        last, tau = None, 1.0
        if job.last is not None:
            last, tau = frames_to_pil([job.last])[0], self.last_tau(job)
        elif self._takes_two_images():
            # FLF2V's image embedding always holds two images: "no last frame" is tau = 0, the last
            # frame's condition absent from every step.
            last, tau = first, 0.0
        schedule = last_frame_schedule(tau, plan.steps_run)
        source = self._encode_source(job, plan) if plan.steps_run < job.steps else None

        with ExitStack() as stack:
            tracker = StepTracker()
            state: dict[str, Any] = {}
            if last is not None and not all(schedule):
                self._impose_schedule(stack, schedule, tracker, state)
            if source is not None:
                # Wraps the schedule's prepare_latents, so the without-last condition is built on the
                # pipeline's noise and the source start is applied once, to what the loop gets.
                self._start_from_source(stack, plan, int(job.steps), source, state)
            return self._call(image=first, last_image=last, **self._job_kwargs(job, plan, tracker))

    def _encode_source(self, job: Any, plan: RenderPlan) -> torch.Tensor:
        """The source clip's VAE latents ``(1, z, f, h, w)``, normalised as the pipeline normalises its condition."""
        pipe = self.pipe
        x0 = self._source_latents(job, plan)  # (1, z, f, h, w)
        config = pipe.vae.config
        mean = torch.tensor(config.latents_mean).view(1, config.z_dim, 1, 1, 1).to(x0)
        std = torch.tensor(config.latents_std).view(1, config.z_dim, 1, 1, 1).to(x0)
        return ((x0 - mean) / std).float()

    def _start_from_source(self, stack: ExitStack, plan: RenderPlan, steps: int, x0: torch.Tensor,
                           state: dict) -> None:
        """Run only the last ``plan.steps_run`` timesteps, from the source noised to the first of them."""
        scheduler = self.pipe.scheduler
        start = steps - plan.steps_run

        def wrap_set_timesteps(original):
            def set_timesteps(*args, **kwargs):
                original(*args, **kwargs)
                # The pipeline loops over `scheduler.timesteps` as read right after this call: hand it the
                # tail, and start the scheduler's own index there (the img2img convention).
                state["timesteps"] = scheduler.timesteps
                scheduler.timesteps = scheduler.timesteps[start:]
                scheduler.set_begin_index(start)

            return set_timesteps

        def wrap_prepare_latents(original):
            def prepare_latents(*args, **kwargs):
                latents, *rest = original(*args, **kwargs)
                # The loop has its timesteps; the scheduler gets its full table back (multistep solvers
                # index it by the absolute step).
                timesteps = state["timesteps"]
                scheduler.timesteps = timesteps
                if latents.shape != x0.shape:
                    raise BadInput(f"the source clip encodes to {tuple(x0.shape)} latents, but the model "
                                   f"renders {tuple(latents.shape)}")
                t = timesteps[start:start + 1]
                source = x0.to(latents)
                if hasattr(scheduler, "scale_noise"):
                    noisy = scheduler.scale_noise(source, t, latents)
                else:
                    noisy = scheduler.add_noise(source, latents, t)
                return (noisy, *rest)

            return prepare_latents

        stack.enter_context(patched(scheduler, "set_timesteps", wrap_set_timesteps))
        stack.enter_context(patched(self.pipe, "prepare_latents", wrap_prepare_latents))

    def _impose_schedule(self, stack: ExitStack, schedule: list[bool], tracker: StepTracker, state: dict) -> None:
        """Swap in the without-last-frame condition for the steps where ``schedule`` is False."""
        pipe = self.pipe

        def wrap_prepare_latents(original):
            signature = inspect.signature(original)

            def prepare_latents(*args, **kwargs):
                latents, condition = original(*args, **kwargs)
                # The same call without the last image, on the same noise (passed in, so no random draw):
                # the pipeline's own definition of the condition with no last frame.
                bound = signature.bind(*args, **kwargs)
                bound.arguments["last_image"] = None
                bound.arguments["latents"] = latents.clone()
                _, state["condition_without_last"] = original(*bound.args, **bound.kwargs)
                return latents, condition

            return prepare_latents

        def swap_condition(module, args, kwargs):
            if tracker.present(schedule):
                return None
            hidden = kwargs["hidden_states"]  # (B, z + mask + z, f, h, w): [latents, mask, condition latents]
            without = state["condition_without_last"].to(device=hidden.device, dtype=hidden.dtype)
            kwargs["hidden_states"] = torch.cat([hidden[:, : hidden.shape[1] - without.shape[1]], without], dim=1)
            image = kwargs.get("encoder_hidden_states_image")
            if image is not None:
                kwargs["encoder_hidden_states_image"] = drop_last_image_embeds(image)
            return args, kwargs

        stack.enter_context(patched(pipe, "prepare_latents", wrap_prepare_latents))
        for transformer in self._transformers():
            # prepend: observers' hooks see what the transformer sees
            handle = transformer.register_forward_pre_hook(swap_condition, with_kwargs=True, prepend=True)
            stack.callback(handle.remove)
