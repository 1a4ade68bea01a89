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

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pdedit.engines.job import EditJob, refuse_keyframes
from pdedit.engines.specs import ENGINES
from pdedit.errors import BadInput, MissingModel
from pdedit.model_folder import how_to_make, hub_or_local, quiet_loading

logger = logging.getLogger(__name__)

__all__ = ["PixelDanceEngine", "load_pipeline"]

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "bfloat16": "bfloat16", "bf16": "bfloat16"}


def _open_pipeline(source: str, local_only: bool, device: str | None, dtype: Any):
    """``PixelDancePipeline.from_pretrained`` (quietly), moved to ``device``; load failures become MissingModel."""
    import torch

    from pdedit.models.unet import PixelDanceUNet
    from pdedit.pipeline import PixelDancePipeline

    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise BadInput(f"unknown dtype {dtype!r}: choose one of {', '.join(_DTYPES)}")
        dtype = getattr(torch, _DTYPES[dtype])
    kwargs: dict[str, Any] = {"local_files_only": local_only}
    if dtype is not None:
        kwargs["torch_dtype"] = dtype
    try:
        with quiet_loading():
            pipe = PixelDancePipeline.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, json.JSONDecodeError) as err:
        raise MissingModel(f"cannot load the model in {source} ({type(err).__name__}: {err}); "
                           f"{how_to_make(source)}") from err
    if not isinstance(pipe.unet, PixelDanceUNet):
        raise MissingModel(f"{source}: unet is a {type(pipe.unet).__name__}, not a PixelDanceUNet: "
                           f"convert a text-to-video model with `pdedit model init --from-t2v SRC OUT`")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else None
    if device is not None:
        pipe.to(device)
    return pipe


def load_pipeline(model_dir: str | Path, device: str | None = "auto", dtype: Any = None):
    """Load a PixelDancePipeline from a local diffusers folder (or a hub id when online).

    Args:
        model_dir: a folder made by ``pdedit model init`` or saved by finetune / ``save_pretrained``;
            a hub id ("owner/name") is tried only when no such folder exists and HF_HUB_OFFLINE is unset.
        device: where to move it: "auto" (default) is the GPU when torch sees one, else the CPU;
            None leaves it where it was loaded (the CPU).
        dtype: torch dtype or name ("fp16", "bf16", ...); default float32 as saved.

    Raises:
        MissingModel: the folder is absent, not a PixelDance model, lacks components or cannot be loaded;
            the message says how to make one.
    """
    source, local_only = hub_or_local(model_dir)
    if local_only:
        ENGINES["pixeldance"].check_folder(source)
    return _open_pipeline(source, local_only, device, dtype)


class PixelDanceEngine:
    """Engine ``pixeldance``: a PixelDancePipeline loaded from a local folder when first used.

    Args:
        model: the model folder (``pdedit.engines.choose`` has checked it).
        device: "auto" (the GPU when there is one), a device, or None (stay on the CPU).
        dtype: weights' dtype (a torch dtype or a name such as "fp16"); default as saved.
        scheduler: a name of ``pdedit.pipeline.SCHEDULERS`` to sample with instead of the model's.
    """

    name = "pixeldance"

    def __init__(self, model: str | Path, device: str | None = "auto", dtype: Any = None,
                 scheduler: str | None = None):
        self.model = Path(model)
        self.device = device
        self.dtype = dtype
        self.scheduler = scheduler
        self._pipe = None

    @property
    def pipe(self):
        """The loaded pipeline (loaded once, on first use)."""
        if self._pipe is None:
            # Through the module's one public loader, looked up here at call time: pdedit.batch swaps it for
            # a per-process cache so that many jobs on one model folder load it once.
            pipe = load_pipeline(self.model, device=self.device, dtype=self.dtype)
            if self.scheduler:
                pipe.set_scheduler(self.scheduler)
            self._pipe = pipe
        return self._pipe

    @property
    def default_size(self) -> tuple[int, int]:
        """(w, h) the model was made for (its UNet's sample size times the VAE factor)."""
        return self.pipe.default_size

    def render(self, job: EditJob, progress: bool = False) -> Iterator[np.ndarray]:
        """Generate ``job.num_frames`` frames from the job's instructions; yields uint8 frames."""
        import torch

        from pdedit.video import to_uint8

        # PixelDance conditions on the first and last frame only (c_image has no middle slots).
        refuse_keyframes(self.name, job.keyframes)
        guidance = job.guidance_scale()
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
            guidance_scale=guidance,
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
