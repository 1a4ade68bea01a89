"""Long videos: clips chained from a storyboard (PixelDance, arXiv 2311.10982: long video generation).

The last generated frame of clip k is the first-frame instruction of clip k+1, so the shots join
without a cut; each shot has its own prompt and, optionally, its own last-frame instruction.

A storyboard is a YAML file::

    first: start.png        # first-frame instruction of shot 1 (relative to the YAML file)
    size: 64x64             # optional; default: the model's size
    frames: 8               # per shot; default: the model's
    fps: 8                  # default: the model's
    steps: 25
    guidance: 7.5           # default: the engine's own
    tau: 1.0
    image_noise: 0.0
    seed: 0
    negative_prompt: ""
    shots:
      - prompt: a paper boat drifts to the left
        last: boat_left.png # optional last-frame instruction of this shot
        tau: 0.6            # optional per-shot frames / tau / seed
      - prompt: the boat sinks
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from pdedit.errors import BadInput

if TYPE_CHECKING:
    from pdedit.generation import Generator

__all__ = ["Shot", "Storyboard", "load_storyboard", "with_first", "generate_long"]

logger = logging.getLogger(__name__)

_SETTINGS = ("size", "frames", "fps", "steps", "guidance", "tau", "image_noise", "seed", "negative_prompt")
_SHOT_KEYS = ("prompt", "last", "frames", "tau", "seed")


@dataclass(frozen=True)
class Shot:
    """One clip of a long video: its prompt, optional last-frame instruction and per-shot overrides."""

    prompt: str
    last: np.ndarray | None = None
    num_frames: int | None = None
    tau: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Storyboard:
    """A parsed storyboard: the first frame, the shots, the shared settings and the image files read."""

    first: np.ndarray | None  # None when the YAML has no 'first': the caller must supply one
    shots: tuple[Shot, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[Path, ...] = ()


def _number(value: Any, kind: type, where: str, low: float | None = None, high: float | None = None):
    """``value`` as ``kind`` within [low, high], else BadInput naming ``where``."""
    try:
        if kind is int and (isinstance(value, bool) or float(value) != int(value)):
            raise ValueError
        number = kind(value)
    except (TypeError, ValueError):
        raise BadInput(f"{where} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise BadInput(f"{where} must be in [{low}, {high}], got {number}")
    return number


def _check_setting(key: str, value: Any, where: str) -> Any:
    """Validate one storyboard setting (shared or per shot)."""
    from pdedit.video import parse_size

    if key == "size":
        return parse_size(value)
    if key == "frames":
        return _number(value, int, where, 2)
    if key in ("steps", "seed"):
        return _number(value, int, where, 1 if key == "steps" else 0)
    if key in ("fps", "guidance", "image_noise"):
        return _number(value, float, where, 0.0)
    if key == "tau":
        return _number(value, float, where, 0.0, 1.0)
    return str(value)


def load_storyboard(path: str | Path) -> Storyboard:
    """Parse a storyboard YAML file (format in this module's docstring); BadInput naming any bad entry."""
    import yaml

    from pdedit.video import load_image

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"storyboard {path} not found: give a YAML file (see `pdedit story --help`)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise BadInput(f"storyboard {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise BadInput(f"storyboard {path} must be a mapping with 'first' and 'shots' (see `pdedit story --help`)")
    unknown = sorted(set(data) - {"first", "shots", *_SETTINGS})
    if unknown:
        raise BadInput(f"storyboard {path}: unknown key(s) {', '.join(unknown)}; allowed: first, shots, "
                       f"{', '.join(_SETTINGS)}")
    settings = {k: _check_setting(k, data[k], f"storyboard {path}: {k}") for k in _SETTINGS if data.get(k) is not None}
    inputs: list[Path] = []

    def image(value: Any, where: str) -> np.ndarray:
        if not isinstance(value, str) or not value:
            raise BadInput(f"storyboard {path}: {where} must be an image path, got {value!r}")
        file = (path.parent / value).expanduser()
        inputs.append(file)
        return load_image(file)

    first = image(data["first"], "first") if "first" in data else None
    shots_data = data.get("shots")
    if not isinstance(shots_data, list) or not shots_data:
        raise BadInput(f"storyboard {path}: 'shots' must be a non-empty list of {{prompt: ..., last: ...}}")
    shots = []
    for k, entry in enumerate(shots_data):
        where = f"storyboard {path}: shots[{k}]"
        if isinstance(entry, str):
            entry = {"prompt": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("prompt"), str):
            raise BadInput(f"{where} needs a 'prompt' (text)")
        unknown = sorted(set(entry) - set(_SHOT_KEYS))
        if unknown:
            raise BadInput(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_SHOT_KEYS)}")
        shots.append(Shot(
            prompt=entry["prompt"],
            last=image(entry["last"], f"shots[{k}].last") if entry.get("last") is not None else None,
            num_frames=_check_setting("frames", entry["frames"], f"{where}.frames") if "frames" in entry else None,
            tau=_check_setting("tau", entry["tau"], f"{where}.tau") if "tau" in entry else None,
            seed=_check_setting("seed", entry["seed"], f"{where}.seed") if "seed" in entry else None,
        ))
    return Storyboard(first=first, shots=tuple(shots), settings=settings, inputs=tuple(inputs))


def generate_long(
    generator: Generator,
    shots: list[Shot] | tuple[Shot, ...],
    first_frame: np.ndarray,
    *,
    frames: int | None = None,
    size: tuple[int, int] | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    tau: float | None = None,
    image_noise: float | None = None,
    negative_prompt: str | None = None,
    seed: int | None = None,
    progress: bool = False,
) -> Iterator[np.ndarray]:
    """Generate shots one after another and yield their uint8 frames as one continuous video.

    The last generated frame of shot k is the first-frame instruction of shot k+1 (as in PixelDance).
    Shot k+1's own first frame re-renders that instruction, so it is dropped from the output: the
    video has ``F + sum(F_k - 1)`` frames and no repeated frame at a join.

    Args:
        generator: a generative engine (``pdedit.generation.open_generator``): pixeldance, wan or ltx.
        shots: the clips, in order (prompt, optional last frame, optional frames / tau / seed).
        first_frame: uint8 (H, W, 3) first-frame instruction of shot 1.
        frames: frames per shot unless a shot says otherwise; default the model's.
        size: (W, H) of the video; instructions are cropped to it; default the model's size (or from
            the first frame's aspect).
        steps, guidance, tau, image_noise, negative_prompt: as in ``pdedit.engines.EditJob``; None takes
            the engine's default.
        seed: shot k uses ``seed + k`` (seed default 0) unless it sets its own seed.
        progress: show each shot's progress bar on stderr.
    """
    from pdedit.generation import generate_video

    if not shots:
        raise BadInput("a long video needs at least one shot")
    size = tuple(size) if size else generator.default_size(first_frame)
    first = first_frame
    for k, shot in enumerate(shots):
        logger.info("shot %d/%d: %s", k + 1, len(shots), shot.prompt)
        job = generator.job(
            first, shot.last, size=size, prompt=shot.prompt, negative_prompt=negative_prompt,
            frames=shot.num_frames or frames, steps=steps, guidance=guidance,
            tau=tau if shot.tau is None else shot.tau, image_noise=image_noise,
            seed=(seed or 0) + k if shot.seed is None else shot.seed,
        )
        video = generate_video(job, generator.engine, progress=progress)
        yield from video if k == 0 else video[1:]
        first = video[-1]


def with_first(storyboard: Storyboard, first: np.ndarray, source: Path | None = None) -> Storyboard:
    """The storyboard with another first-frame instruction (e.g. from the command line)."""
    inputs = storyboard.inputs + ((source,) if source is not None else ())
    return replace(storyboard, first=first, inputs=inputs)
