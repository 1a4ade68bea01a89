"""The pixeldance engine: regenerates the clip with PixelDance (arXiv 2311.10982) from the edited keyframes.

Zero-shot editing as in PixelDance §4: the edited first frame is the first-frame instruction, the edited
last frame the last-frame instruction (guiding the first ``tau`` of the steps), the prompt the text
instruction. With ``strength < 1`` sampling starts from the noised source clip (SDEdit), so the result
keeps more of the source's motion.

How the F generated frames map onto the window: the editor opens the source as a Clip of ``F`` frames
sampled evenly over the window [start, end] (``pdedit.video.plan_window``), so generated frame ``i``
stands for source frame ``window.indices[i]``; the output is written at the window's fps (``F`` over the
window's duration), so the edited clip lasts as long as the source window and its audio lines up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pdedit.engines import EditJob
from pdedit.errors import Unsupported

logger = logging.getLogger(__name__)

__all__ = ["PixelDanceEngine"]


class PixelDanceEngine:
    """Engine ``pixeldance``: a PixelDancePipeline loaded from a local folder when first used."""

    name = "pixeldance"
    default_guidance = 7.5

    def __init__(self, model: str | Path, device: str | None = "auto", dtype=None):
        self.model = Path(model)
        self.device = device
        self.dtype = dtype
        self._pipe = None

    @property
    def pipe(self):
        """The loaded pipeline (loaded once, on first use)."""
        if self._pipe is None:
            from pdedit.pipeline import load_pipeline

            self._pipe = load_pipeline(self.model, device=self.device, dtype=self.dtype)
        return self._pipe

    def render(self, job: EditJob, progress: bool = False) -> Iterator[np.ndarray]:
        """Generate ``job.num_frames`` frames from the job's instructions; yields uint8 frames."""
        import torch

        from pdedit.pipeline import to_uint8

        if job.keyframes:
            # PixelDance conditions on the first and last frame only (c_image has no middle slots).
            raise Unsupported(
                f"the pixeldance engine takes a first and a last frame only, not --keyframe "
                f"{sorted(job.keyframes)}: drop the keyframes, or use --engine ltx or propagate"
            )
        pipe = self.pipe
        pipe.set_progress_bar_config(disable=not progress)
        source = None
        if job.strength < 1.0:
            if job.source is None:
                raise ValueError("strength < 1 starts from the source clip, but the job has none")
            source = list(job.source)  # F frames at job.size: small, the model's clip length
        w, h = job.size
        generator = torch.Generator(device="cpu").manual_seed(job.seed)
        out = pipe(
            prompt=job.prompt,
            first_frame=job.first,
            last_frame=job.last,
            negative_prompt=job.negative_prompt or None,
            num_frames=job.num_frames,
            height=h,
            width=w,
            num_inference_steps=job.steps,
            guidance_scale=self.default_guidance if job.guidance is None else job.guidance,
            tau=job.tau if job.last is not None else 0.0,
            image_noise=job.image_noise,
            source_video=source,
            strength=job.strength,
            generator=generator,
            output_type="np",
        )
        frames = to_uint8(out.frames)  # (1, F, H, W, 3) float in [0, 1] -> F uint8 frames
        logger.info("pixeldance generated %d frames at %dx%d", len(frames), w, h)
        yield from frames
