"""Engines: one interface, ``Engine.render(EditJob) -> frames``, over the ways pdedit makes a clip.

- ``propagate``: no weights; carries the edited keyframes along the source video's optical flow.
  The default when no model is given, so ``pdedit edit`` works on a fresh machine.
- ``pixeldance``: the PixelDance pipeline (arXiv 2311.10982) from a local diffusers folder.

``get_engine(name, model)`` builds one; ``choose_engine`` says which one "auto" means and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pdedit.errors import BadInput, MissingModel

__all__ = ["EditJob", "Engine", "ENGINES", "get_engine", "choose_engine", "read_model_class"]

# The pipeline class names (model_index.json "_class_name") each model-backed engine loads.
MODEL_CLASSES = {
    "PixelDancePipeline": "pixeldance",
    "WanImageToVideoPipeline": "wan",
    "LTXConditionPipeline": "ltx",
    "LTXPipeline": "ltx",
    "LTXImageToVideoPipeline": "ltx",
}
MAKE_MODEL_HINT = "make one with `pdedit model init --tiny DIR` (random weights) or `pdedit model init --from-t2v SRC DIR`"


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
        guidance: text guidance scale; None takes the engine's own default (``default_guidance``: 7.5
            for pixeldance, 5.0 for Wan, 3.0 for LTX).
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


@runtime_checkable
class Engine(Protocol):
    """Renders an EditJob: yields ``job.num_frames`` uint8 (H, W, 3) frames at ``job.size``, in order."""

    name: str

    def render(self, job: EditJob, progress: bool = False) -> Iterator[np.ndarray]:
        """Yield the frames one by one, so the writer can stream them."""
        ...


def _propagate(model: str | Path | None = None) -> Engine:
    """Build the propagate engine (it takes no model)."""
    from pdedit.engines.propagate import PropagateEngine

    return PropagateEngine()


def _pixeldance(model: str | Path | None = None) -> Engine:
    """Build the pixeldance engine over a model folder (loaded when rendering)."""
    from pdedit.engines.pixeldance import PixelDanceEngine

    if model is None:
        raise BadInput(f"--engine pixeldance needs --model DIR, a PixelDance model folder; {MAKE_MODEL_HINT}")
    return PixelDanceEngine(model)


def _open_model_hint(engine: str) -> str:
    """How to get a model folder for an open-model engine (wan, ltx)."""
    from pdedit.engines.open_models import download_hint

    return download_hint(engine, "DIR")


def _wan(model: str | Path | None = None, **options: Any) -> Engine:
    """Build the wan engine (Wan2.1 FLF2V) over a model folder; options: device, dtype, offload, vae_tiling."""
    from pdedit.engines.wan import WanEngine

    if model is None:
        raise BadInput(f"--engine wan needs --model DIR, a Wan2.1 FLF2V folder; {_open_model_hint('wan')}")
    return WanEngine(model, **options)


def _ltx(model: str | Path | None = None, **options: Any) -> Engine:
    """Build the ltx engine (LTX-Video keyframes) over a model folder; options: device, dtype, offload, vae_tiling."""
    from pdedit.engines.ltx import LTXEngine

    if model is None:
        raise BadInput(f"--engine ltx needs --model DIR, an LTX-Video folder; {_open_model_hint('ltx')}")
    return LTXEngine(model, **options)


# Engines that take edited keyframes between the first and the last frame (EditJob.keyframes); the others
# condition on first and last only and refuse them, so the editor can say so before any heavy work.
KEYFRAME_ENGINES = ("propagate", "ltx")

ENGINES: dict[str, Callable[..., Engine]] = {
    "propagate": _propagate,
    "pixeldance": _pixeldance,
    "wan": _wan,
    "ltx": _ltx,
}


def read_model_class(model: str | Path) -> str:
    """The pipeline class named in a model folder's model_index.json (MissingModel when there is none)."""
    from pdedit.pipeline import read_model_index  # imported here: only a run with a model pays for torch

    return read_model_index(model, MAKE_MODEL_HINT)["_class_name"]


def choose_engine(name: str = "auto", model: str | Path | None = None) -> tuple[str, str]:
    """Resolve an engine name ("auto" included) against a model folder; returns (engine, why)."""
    if name != "auto" and name not in ENGINES:
        raise BadInput(f"unknown engine {name!r}: choose one of auto, {', '.join(ENGINES)}")
    if name == "auto" and model is None:
        return "propagate", "no --model given: using the weight-free propagate engine"
    if name == "propagate":
        why = "--engine propagate: carrying the edits along the source video's optical flow"
        return "propagate", why + (" (the --model folder is not used)" if model is not None else "")
    if model is None:
        ENGINES[name](None)  # each model engine raises BadInput with its own hint on getting a model
        raise BadInput(f"--engine {name} needs --model DIR, a model folder")
    if name in ("wan", "ltx"):
        from pdedit.engines.open_models import check_model_folder

        check_model_folder(model, name)  # its messages name the hub id to download
    kind = read_model_class(model)
    engine = MODEL_CLASSES.get(kind)
    if engine is None:
        raise MissingModel(
            f"{model} holds a {kind}, which no pdedit engine runs (model_index.json should name one of "
            f"{', '.join(MODEL_CLASSES)}); {MAKE_MODEL_HINT}"
        )
    if name not in ("auto", engine):
        raise MissingModel(f"{model} holds a {kind}, not a model for --engine {name}: "
                           f"use --engine {engine} (or auto)")
    if name == "auto":
        return engine, f"--model {model} is a {kind}: using the {engine} engine"
    return engine, f"--engine {engine} with the model in {model}"


def get_engine(name: str = "auto", model: str | Path | None = None) -> Engine:
    """Build the engine ``name`` ("auto": from the model folder's model_index.json, or propagate without one)."""
    engine, _ = choose_engine(name, model)
    return ENGINES[engine](model)
