"""One generation step: text + first (+ last) frame -> frames, through any generative engine.

``pdedit generate``, ``pdedit story`` and the app's Generate tab all run this, so every engine that runs a
model folder (pixeldance, wan, ltx) works in all three, with the engine's own defaults (its spec, or the
model folder's ``num_frames`` / ``fps``) filled in in one place: ``EngineChoice.job``.

    gen = open_generator("auto", "tiny-model")
    job = gen.job(first, last, prompt="a slow pan", tau=0.7)
    frames = generate_video(job, gen.engine)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pdedit.engines import EditJob, Engine, EngineChoice, choose, generative_engines
from pdedit.errors import BadInput
from pdedit.model_folder import how_to_make

__all__ = ["Generator", "open_generator", "generate_video"]

logger = logging.getLogger(__name__)


@dataclass
class Generator:
    """A generative engine ready to run: what was chosen (spec, model folder, defaults) and the built engine."""

    choice: EngineChoice
    engine: Engine

    @property
    def name(self) -> str:
        """The engine's name."""
        return self.choice.name

    def default_size(self, first: np.ndarray | None = None) -> tuple[int, int]:
        """(w, h) when none is asked: the model's own size when it has one, else from the first frame's aspect."""
        own = getattr(self.engine, "default_size", None)  # a PixelDance model is trained at one size
        if own is not None:
            return tuple(own)
        if first is None:
            raise BadInput(f"the {self.name} engine needs --size WxH or a first frame to take the size from")
        from pdedit.video import default_size

        return default_size(first.shape[1], first.shape[0])

    def job(self, first: np.ndarray, last: np.ndarray | None = None, *, size: tuple[int, int] | None = None,
            **settings: Any) -> EditJob:
        """A generation job: the instructions cropped to ``size`` (default ``default_size``), the engine's defaults
        for every setting left None (frames, fps, guidance, steps; tau 1, seed 0, image noise 0)."""
        from pdedit.video import resize_frame

        wh = tuple(size) if size else self.default_size(first)
        settings = {("num_frames" if k == "frames" else k): v for k, v in settings.items()}
        return self.choice.job(
            source=None, first=resize_frame(first, wh, "crop"),
            last=resize_frame(last, wh, "crop") if last is not None else None, size=wh, **settings,
        )


def open_generator(engine: str = "auto", model: str | Path | None = None, **options: Any) -> Generator:
    """Choose a generative engine for ``model`` and build it; options (None: unset) as its spec allows.

    Raises:
        BadInput: no model, or the engine takes none (propagate edits a video; it does not generate).
        MissingModel: the folder is absent or of a kind no generative engine runs.
    """
    if model is None:
        raise BadInput(f"generating needs --model DIR, a model folder for one of {', '.join(generative_engines())}; "
                       f"{how_to_make()}")
    choice = choose(engine, model)
    if not choice.spec.needs_model:
        raise BadInput(f"the {choice.name} engine edits a video and does not generate: use one of "
                       f"{', '.join(generative_engines())} (or auto) with a model folder")
    return Generator(choice, choice.build(**options))


def generate_video(job: EditJob, engine: Engine, progress: bool = False) -> list[np.ndarray]:
    """Render a generation job with ``engine``: ``job.num_frames`` uint8 (H, W, 3) frames at ``job.size``."""
    frames: Iterable[np.ndarray] = engine.render(job, progress=progress)
    video = [np.asarray(f) for f in frames]
    if len(video) != job.num_frames:
        raise RuntimeError(f"the {engine.name} engine made {len(video)} frames, {job.num_frames} were expected")
    logger.info("%s generated %d frames at %dx%d", engine.name, len(video), *job.size)
    return video
