"""Sketch instructions: black lines on white, from a frame.

PixelDance (arXiv 2311.10982, §4.3) fine-tunes the model with the last-frame instruction turned
into a sketch, so a user can draw where a clip should end. ``xdog`` (default) and ``canny`` need
no weights; ``hed``, ``pidinet`` and ``lineart`` run controlnet-aux detectors from local files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from pdedit.errors import BadInput
from pdedit.instructions.annotators import load_annotator, run_annotator

__all__ = ["SKETCH_METHODS", "WEIGHT_FREE_SKETCHES", "to_sketch", "xdog", "canny", "silhouette"]


def _gray(frame: np.ndarray) -> np.ndarray:
    """Luminance in [0, 1], float32 (H, W)."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def xdog(frame: np.ndarray, sigma: float = 1.0, k: float = 1.6, epsilon: float = 0.01,
         phi: float = 100.0) -> np.ndarray:
    """Difference of Gaussians with a soft tanh threshold (XDoG, Winnemöller et al. 2012)."""
    gray = _gray(frame)
    dog = cv2.GaussianBlur(gray, (0, 0), sigma) - cv2.GaussianBlur(gray, (0, 0), sigma * k)
    # Ink only on the dark side of an edge (dog < -epsilon), ramping in with tanh so lines are
    # anti-aliased; flat areas, however dark, stay white, so the sketch holds lines only.
    lines = np.where(dog > -epsilon, 1.0, 1.0 + np.tanh(phi * (dog + epsilon)))
    out = np.clip(lines * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=2)


def canny(frame: np.ndarray, sigma: float = 0.33) -> np.ndarray:
    """Canny edges with thresholds set from the image's median (no tuning per image), inverted."""
    gray = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (5, 5), 0)
    median = float(np.median(gray))
    low = int(max(0, (1.0 - sigma) * median))
    high = int(min(255, (1.0 + sigma) * median))
    edges = cv2.Canny(gray, low, max(high, low + 1))
    return np.repeat((255 - edges)[..., None], 3, axis=2)


def silhouette(frame: np.ndarray, floor: float = 0.1) -> np.ndarray:
    """The foreground as a filled black shape on white: what differs from the frame's border median.

    A drawn blob of where things should end, for small or flat frames where edges carry too little:
    on an 8x8 frame XDoG's lines smear into dark halos outside the object. Ink is proportional to
    the difference from the background (normalised by the largest), so partly covered pixels keep
    the object's sub-pixel position; differences below ``floor`` (of the largest) are background.
    """
    img = frame.astype(np.float32) / 255.0
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    diff = np.abs(img - np.median(border, axis=0)).max(axis=-1)  # (H, W)
    peak = float(diff.max())
    ink = np.zeros_like(diff) if peak < 1e-3 else diff / peak
    ink = np.where(ink < floor, 0.0, ink)
    out = np.clip((1.0 - ink) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=2)


def _detector_sketch(name: str) -> Callable[..., np.ndarray]:
    """A sketch method backed by the controlnet-aux detector ``name``."""

    def sketch(frame: np.ndarray, annotator_dir: str | Path | None = None) -> np.ndarray:
        out = run_annotator(load_annotator(name, annotator_dir), frame)
        # HED and PidiNet draw white lines on black; lineart already gives black on white.
        return out if name == "lineart" else 255 - out

    sketch.__doc__ = f"{name} soft edges through controlnet-aux, as black lines on white."
    return sketch


# method -> function; the weight-free ones take only the frame.
SKETCH_METHODS: dict[str, Callable[..., np.ndarray]] = {
    "xdog": xdog,
    "canny": canny,
    "silhouette": silhouette,
    "hed": _detector_sketch("hed"),
    "pidinet": _detector_sketch("pidinet"),
    "lineart": _detector_sketch("lineart"),
}
WEIGHT_FREE_SKETCHES = ("xdog", "canny", "silhouette")


def to_sketch(frame: np.ndarray, *, method: str | None = None, annotator_dir: str | Path | None = None,
              **_: object) -> np.ndarray:
    """Black lines on white with ``method`` (default xdog); detector methods need ``annotator_dir``."""
    method = method or "xdog"
    if method not in SKETCH_METHODS:
        raise BadInput(f"unknown sketch method {method!r}; use one of {', '.join(SKETCH_METHODS)}")
    if method in WEIGHT_FREE_SKETCHES:
        return SKETCH_METHODS[method](frame)
    return SKETCH_METHODS[method](frame, annotator_dir=annotator_dir)
