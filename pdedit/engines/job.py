"""What every engine shares: the job it renders, the interface it implements, and the refusals they share.

This module imports no engine and no registry, so the engines and ``pdedit.engines`` (the registry)
both import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pdedit.errors import Unsupported

__all__ = ["EditJob", "Engine", "refuse_keyframes"]


@dataclass
class EditJob:
    """One clip to render.

    Args:
        source: the source clip (a re-iterable ``pdedit.video.Clip`` or a list of frames) at ``size``;
            None for pure generation.
        first: the edited first frame, uint8 (H, W, 3) RGB at ``size``.
        last: the edited last frame (same layout), or None for basic mode (first frame only).
        num_frames: frames to render (for propagate: the source clip's length).
        fps: output frame rate.
        size: (w, h) of the frames.
        prompt, negative_prompt: text instructions (generative engines).
        tau: fraction of the denoising steps that see the last frame (PixelDance §3.2).
        strength: 1.0 starts from pure noise; lower starts from the noised source clip (SDEdit).
        steps, seed, image_noise: sampler settings (generative engines).
        guidance: text guidance scale; None: the engine's own default (``EngineSpec.guidance``), which
            ``EngineChoice.job`` fills in; a generative engine refuses a job where it is still None.
        keyframes: extra edited frames by position in the output clip (0..num_frames-1); propagate
            carries them like first/last, ltx conditions on them, pixeldance and wan refuse them.
        keyframe_tau: per extra keyframe, the tau of its guidance (generative engines that take K keyframes).
    """

    source: Any
    first: np.ndarray
    last: np.ndarray | None
    num_frames: int
    fps: float
    size: tuple[int, int]
    prompt: str = ""
    negative_prompt: str = ""
    tau: float = 1.0
    strength: float = 1.0
    steps: int = 25
    guidance: float | None = None
    seed: int = 0
    image_noise: float = 0.0
    keyframes: dict[int, np.ndarray] = field(default_factory=dict)
    keyframe_tau: dict[int, float] = field(default_factory=dict)

    def guidance_scale(self) -> float:
        """The guidance to sample with; ValueError when no default was filled in (a caller's bug)."""
        if self.guidance is None:
            raise ValueError("EditJob.guidance is None: build the job with EngineChoice.job, which fills in the "
                             "engine's default")
        return float(self.guidance)


@runtime_checkable
class Engine(Protocol):
    """Renders an EditJob: yields ``job.num_frames`` uint8 (H, W, 3) frames at ``job.size``, in order."""

    name: str

    def render(self, job: EditJob, progress: bool = False) -> Iterator[np.ndarray]:
        """Yield the frames one by one, so the writer can stream them."""
        ...


def refuse_keyframes(engine: str, keyframes: Mapping[int, Any]) -> None:
    """Unsupported when an engine that conditions on the first and last frame only is given middle keyframes."""
    if keyframes:
        raise Unsupported(f"the {engine} engine takes a first and a last frame only, not --keyframe "
                          f"{sorted(keyframes)}: drop the keyframes, or use an engine that takes them "
                          f"(--engine ltx or propagate)")
