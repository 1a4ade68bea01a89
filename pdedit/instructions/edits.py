"""Weight-free automatic edits: ``auto:<name>`` keyframe edits, deterministic and fast.

Each edit is a function ``(frame, **params) -> frame`` on uint8 RGB ``(H, W, 3)`` arrays. Its
keyword parameters (with their type hints and defaults) are the keys a spec may set, so
``auto:hue:degrees=40`` calls ``hue(frame, degrees=40.0)``; `pdedit.instructions.spec` reads them
from the signatures, so a parameter is declared once, here.

PixelDance (arXiv 2311.10982, §4.4) edits a video by editing its first (and last) frame and
regenerating the clip; these edits give such keyframes without any model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from pdedit.errors import BadInput

__all__ = [
    "EDITS",
    "cartoon",
    "stylize",
    "pencil",
    "sepia",
    "night",
    "hue",
    "posterize",
    "whitebalance",
    "contrast",
    "colortransfer",
]

# One warm tint for sepia: every output pixel is luminance times this colour, so all share its hue.
SEPIA_TINT = np.array([1.0, 0.80, 0.58], dtype=np.float32)


def _to_float(frame: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 RGB in [0, 1]."""
    return frame.astype(np.float32) / 255.0


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1] -> uint8, rounded and clipped."""
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _blend(frame: np.ndarray, edited: np.ndarray, strength: float) -> np.ndarray:
    """Mix an edit with the original frame: 1 = the edit, 0 = the original."""
    if strength >= 1.0:
        return edited
    mixed = (1.0 - strength) * frame.astype(np.float32) + strength * edited.astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def _luminance(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of a float RGB image, (H, W)."""
    return image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def cartoon(frame: np.ndarray, levels: int = 5, edges: float = 1.0) -> np.ndarray:
    """Flat shading (smoothed colours, lightness in ``levels`` bands) with dark outlines."""
    if not 2 <= levels <= 64:
        raise BadInput(f"auto:cartoon needs 2 <= levels <= 64, got {levels}")
    smooth = cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    for _ in range(3):  # edge-preserving smoothing, at half size for speed
        smooth = cv2.bilateralFilter(smooth, 7, 40, 5)
    smooth = cv2.resize(smooth, frame.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    # Band the lightness only: quantising R, G, B separately would shift hues (skin turns green).
    lab = cv2.cvtColor(_to_float(smooth), cv2.COLOR_RGB2LAB)
    band = 100.0 / levels
    lab[..., 0] = (np.floor(lab[..., 0] / band) + 0.5) * band
    flat = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    if edges > 0:
        gray = cv2.medianBlur(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 7)
        # Adaptive threshold keeps outlines where local contrast is high, whatever the exposure.
        outline = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 13, 8)
        flat = flat * (1.0 - (outline < 128).astype(np.float32)[..., None] * min(edges, 1.0))
    return _to_uint8(flat)


def stylize(frame: np.ndarray, sigma_s: float = 60.0, sigma_r: float = 0.45) -> np.ndarray:
    """A painted, watercolour look (OpenCV's domain-transform stylization)."""
    if not (0 < sigma_s <= 200 and 0 < sigma_r <= 1):
        raise BadInput(f"auto:stylize needs 0 < sigma_s <= 200 and 0 < sigma_r <= 1, got {sigma_s}, {sigma_r}")
    return cv2.stylization(np.ascontiguousarray(frame), sigma_s=sigma_s, sigma_r=sigma_r)


def pencil(frame: np.ndarray, sigma: float = 8.0, darkness: float = 1.0) -> np.ndarray:
    """A grey pencil drawing: the luminance divided by its blurred inverse (a colour-dodge blend)."""
    if sigma <= 0:
        raise BadInput(f"auto:pencil needs sigma > 0, got {sigma}")
    gray = _luminance(_to_float(frame))
    blurred = cv2.GaussianBlur(gray, (0, 0), sigma)
    dodge = np.clip(gray / np.maximum(blurred, 1e-3), 0.0, 1.0)
    # darkness > 1 deepens the strokes, < 1 lightens them.
    drawing = dodge ** max(darkness, 0.05)
    return _to_uint8(np.repeat(drawing[..., None], 3, axis=2))


def sepia(frame: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Old-photo brown: every pixel becomes its luminance times one warm tint."""
    luma = _luminance(_to_float(frame))
    # A slight lift keeps highlights bright after multiplying by a tint below 1 in G and B.
    toned = (luma[..., None] ** 0.9) * SEPIA_TINT
    return _blend(frame, _to_uint8(toned), strength)


def night(frame: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Day-for-night: darker, desaturated and blue."""
    image = _to_float(frame)
    luma = _luminance(image)[..., None]
    # Night vision loses colour first (scotopic vision), so most of the saturation goes.
    desat = 0.25 * image + 0.75 * luma
    dark = desat**1.6 * np.array([0.55, 0.68, 1.0], dtype=np.float32) * 0.7
    return _blend(frame, _to_uint8(dark), strength)


def hue(frame: np.ndarray, degrees: float = 60.0) -> np.ndarray:
    """Rotate every pixel's hue by ``degrees`` (saturation and value unchanged)."""
    hsv = cv2.cvtColor(_to_float(frame), cv2.COLOR_RGB2HSV)  # float: H in [0, 360)
    hsv[..., 0] = np.mod(hsv[..., 0] + degrees, 360.0)
    return _to_uint8(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))


def posterize(frame: np.ndarray, levels: int = 4) -> np.ndarray:
    """Quantise each channel to ``levels`` evenly spaced values (poster look)."""
    if not 2 <= levels <= 256:
        raise BadInput(f"auto:posterize needs 2 <= levels <= 256, got {levels}")
    step = 255.0 / (levels - 1)
    index = np.floor(frame.astype(np.float32) * levels / 256.0)  # bins of equal width
    return np.clip(index * step + 0.5, 0, 255).astype(np.uint8)


def whitebalance(frame: np.ndarray, strength: float = 1.0, norm: float = 4.0) -> np.ndarray:
    """Neutralise a colour cast: scale channels so the scene's illuminant estimate becomes grey."""
    if norm < 1:
        raise BadInput(f"auto:whitebalance needs norm >= 1, got {norm}")
    image = _to_float(frame)
    # Shades of grey (Finlayson & Trezzi 2004): the illuminant is the p-norm of each channel. p = 1
    # is grey-world, which turns a warm scene blue; p = 4 leans on the bright, near-white pixels.
    illuminant = np.power(np.mean(np.power(image.reshape(-1, 3), norm), axis=0), 1.0 / norm)
    gains = illuminant.mean() / np.maximum(illuminant, 1e-4)
    return _blend(frame, _to_uint8(image * gains), strength)


def contrast(frame: np.ndarray, clip: float = 2.5, tiles: int = 8) -> np.ndarray:
    """Local contrast (CLAHE on the L channel of Lab), colours kept."""
    if clip <= 0 or tiles < 1:
        raise BadInput(f"auto:contrast needs clip > 0 and tiles >= 1, got clip={clip}, tiles={tiles}")
    lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles))
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def colortransfer(frame: np.ndarray, ref: str = "", strength: float = 1.0) -> np.ndarray:
    """Give the frame the colour statistics of a reference image (Reinhard et al. 2001, in Lab)."""
    if not ref:
        raise BadInput("auto:colortransfer needs a reference image: auto:colortransfer:ref=PATH")
    from pdedit.video import load_image  # the one image reader; imported here to keep edits a leaf

    reference = load_image(Path(ref))
    src = cv2.cvtColor(_to_float(frame), cv2.COLOR_RGB2LAB).reshape(-1, 3)
    dst = cv2.cvtColor(_to_float(reference), cv2.COLOR_RGB2LAB).reshape(-1, 3)
    scale = dst.std(axis=0) / np.maximum(src.std(axis=0), 1e-4)
    lab = (src - src.mean(axis=0)) * scale + dst.mean(axis=0)
    rgb = cv2.cvtColor(lab.reshape(frame.shape).astype(np.float32), cv2.COLOR_LAB2RGB)
    return _blend(frame, _to_uint8(rgb), strength)


# name -> edit; the order is the order of galleries and of error messages.
EDITS: dict[str, Callable[..., np.ndarray]] = {
    "cartoon": cartoon,
    "stylize": stylize,
    "pencil": pencil,
    "sepia": sepia,
    "night": night,
    "hue": hue,
    "posterize": posterize,
    "whitebalance": whitebalance,
    "contrast": contrast,
    "colortransfer": colortransfer,
}
