"""The ltx engine: LTX-Video keyframes (diffusers ``LTXConditionPipeline``) under the tau schedule.

LTX-Video conditions on images at frame indices: the first frame is written into the first latent
frame, every later keyframe (the last frame included) is VAE-encoded into extra tokens placed at its
frame's position and kept noise-free while the video tokens are denoised. The stock pipeline shows every
keyframe in every step. Here each keyframe after the first carries a tau (``job.keyframe_tau``, default
``job.tau``): it is given in the first ``round(tau * T)`` steps only (PixelDance §3.2, arXiv 2311.10982;
``pdedit.conditioning.last_frame_schedule``), so the clip heads for it without copying it at the end.

"Absent" means what the pipeline does without that condition: the keyframe's tokens are removed from the
transformer's input (hidden states, per-token timesteps, positions). A forward pre-hook on the transformer
removes them after step ``k`` and a forward hook puts zeros back in their place in the output; the
pipeline already keeps conditioning tokens fixed (their per-token timestep is 0), so those zeros are
never used. The pipeline is called as it is, never copied; ``callback_on_step_end`` tracks the step.
With every tau = 1 nothing is installed: the output is the stock pipeline's, bit for bit.

strength < 1 (SDEdit) is the pipeline's own ``denoise_strength``: the source clip's VAE latents are
noised to the start of the last ``round(strength * T)`` steps of the flow-matching schedule.

LTX renders ``8k + 1`` frames at multiples of 32; ``image_noise`` is its ``image_cond_noise_scale``.
"""

from __future__ import annotations

import logging
import math
from contextlib import ExitStack
from typing import Any

import numpy as np
import torch

from pdedit.conditioning import last_frame_schedule
from pdedit.engines.open_models import (
    OpenModelEngine,
    RenderPlan,
    StepTracker,
    frames_to_pil,
    load_open_pipeline,
)

logger = logging.getLogger(__name__)

__all__ = ["LTXEngine"]

# LTXConditionPipeline.check_inputs wants height and width divisible by 32 whatever the VAE.
_LTX_SIZE_MULTIPLE = 32


class LTXEngine(OpenModelEngine):
    """Engine ``ltx``: LTX-Video from a local diffusers folder (LTXPipeline or LTXConditionPipeline).

    Args: as ``OpenModelEngine`` (model, device, dtype, offload, vae_tiling).
    """

    name = "ltx"

    def _load(self) -> Any:
        """Load the folder as an LTXConditionPipeline (an LTXPipeline folder has the same components)."""
        from diffusers import LTXConditionPipeline

        return load_open_pipeline(LTXConditionPipeline, self.model, self.name, self.dtype)

    def _grid(self) -> tuple[int, int]:
        """8k+1 frames (the VAE's temporal factor); sizes in multiples of 32 and of VAE factor x patch."""
        pipe = self.pipe
        spatial = pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size
        return pipe.vae_temporal_compression_ratio, math.lcm(spatial, _LTX_SIZE_MULTIPLE)

    def _tokens_per_image(self, plan: RenderPlan) -> int:
        """Transformer tokens of one keyframe image (one latent frame)."""
        pipe = self.pipe
        w, h = plan.model_size
        p = pipe.transformer_spatial_patch_size
        return (h // pipe.vae_spatial_compression_ratio // p) * (w // pipe.vae_spatial_compression_ratio // p)

    def _activation_bytes(self, plan: RenderPlan) -> int:
        """One transformer call (cond and uncond batched) or a VAE tile decode over all frames, the larger."""
        pipe = self.pipe
        config = pipe.transformer.config
        latent_frames = (plan.model_frames - 1) // pipe.vae_temporal_compression_ratio + 1
        tokens = self._tokens_per_image(plan) * (latent_frames + 8)  # video tokens + a few keyframes
        dim = config.num_attention_heads * config.attention_head_dim
        bytes_per = torch.finfo(self.dtype).bits // 8
        transformer = 2 * tokens * 8 * dim * bytes_per * 2
        w, h = plan.model_size
        tile_h, tile_w = (min(h, 512), min(w, 512)) if self.vae_tiling else (h, w)
        # The decoder's widest maps are at 1/patch of the frame (it ends by un-patchifying) and cover all frames.
        patch = pipe.vae.config.patch_size
        channels = pipe.vae.config.decoder_block_out_channels[0]
        vae = plan.model_frames * (tile_h // patch) * (tile_w // patch) * channels * bytes_per * 8
        return max(transformer, vae)

    def _generate(self, job: Any, plan: RenderPlan) -> np.ndarray:
        """Run LTXConditionPipeline with each keyframe's tau schedule (and SDEdit start) imposed."""
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        steps = int(job.steps)
        keyframes = sorted((int(i), f) for i, f in job.keyframes.items())
        if job.last is not None:
            keyframes.append((int(job.num_frames) - 1, job.last))
        conditions = [LTXVideoCondition(image=frames_to_pil([job.first])[0], frame_index=0)]
        schedules = []
        for idx, frame in keyframes:
            # Conditions after the first become extra tokens, in this order, ahead of the video tokens.
            conditions.append(LTXVideoCondition(image=frames_to_pil([frame])[0], frame_index=plan.positions[idx]))
            schedules.append(last_frame_schedule(float(job.keyframe_tau.get(idx, job.tau)), plan.steps_run))
        kwargs: dict[str, Any] = {}
        if plan.steps_run < steps:
            kwargs["latents"] = self._encode_source(job, plan)
            # The pipeline runs int(strength * T) steps: ask for steps_run + 0.5 so it floors to steps_run.
            kwargs["denoise_strength"] = (plan.steps_run + 0.5) / steps

        with ExitStack() as stack:
            tracker = StepTracker()
            if not all(all(s) for s in schedules):
                self._impose_schedules(stack, schedules, tracker, plan)
            return self._call(
                conditions=conditions,
                frame_rate=float(job.fps) * (plan.model_frames - 1) / (int(job.num_frames) - 1),
                image_cond_noise_scale=float(job.image_noise),
                **self._job_kwargs(job, plan, tracker),
                **kwargs,
            )

    def _encode_source(self, job: Any, plan: RenderPlan) -> torch.Tensor:
        """The source clip's latents ``(1, C, f, h, w)``, normalised as the pipeline normalises conditions."""
        pipe = self.pipe
        x0 = self._source_latents(job, plan)  # (1, C, f, h, w)
        return pipe._normalize_latents(x0, pipe.vae.latents_mean, pipe.vae.latents_std).float()

    def _impose_schedules(self, stack: ExitStack, schedules: list[list[bool]], tracker: StepTracker,
                          plan: RenderPlan) -> None:
        """Remove each keyframe's tokens from the transformer's input in the steps its schedule is False."""
        n = self._tokens_per_image(plan)
        pipe = self.pipe
        latent_frames = (plan.model_frames - 1) // pipe.vae_temporal_compression_ratio + 1
        expected = n * (len(schedules) + latent_frames // pipe.transformer_temporal_patch_size)
        state: dict[str, Any] = {}

        def drop_absent(module, args, kwargs):
            absent = [i for i, schedule in enumerate(schedules) if not tracker.present(schedule)]
            if not absent:
                return None
            hidden = kwargs["hidden_states"]  # (N, S, D): [keyframe 1 tokens, ..., keyframe K, video tokens]
            total = hidden.shape[1]
            if total != expected:
                raise RuntimeError(f"LTX token layout changed: {total} tokens, expected {expected} "
                                   f"({len(schedules)} keyframes of {n} + the video); diffusers version?")
            keep = torch.ones(total, dtype=torch.bool, device=hidden.device)
            for i in absent:
                keep[i * n:(i + 1) * n] = False
            index = keep.nonzero().squeeze(1)
            kwargs["hidden_states"] = hidden[:, index]
            timestep = kwargs["timestep"]  # (N, S) per token, or (N, 1)
            if timestep.ndim == 2 and timestep.shape[1] == total:
                kwargs["timestep"] = timestep[:, index]
            kwargs["video_coords"] = kwargs["video_coords"][:, :, index]  # (N, 3, S)
            state["kept"] = (index, total)
            return args, kwargs

        def restore_layout(module, args, kwargs, output):
            kept = state.pop("kept", None)
            if kept is None:
                return None
            index, total = kept
            pred = output[0]  # (N, S_kept, D)
            full = pred.new_zeros(pred.shape[0], total, pred.shape[2])
            full[:, index] = pred
            return (full, *output[1:]) if isinstance(output, tuple) else type(output)(sample=full)

        # prepend: observers' hooks see what the transformer sees
        pre = pipe.transformer.register_forward_pre_hook(drop_absent, with_kwargs=True, prepend=True)
        post = pipe.transformer.register_forward_hook(restore_layout, with_kwargs=True, prepend=True)
        stack.callback(pre.remove)
        stack.callback(post.remove)
