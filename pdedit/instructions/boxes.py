"""Box instructions: coloured boxes on black, one deterministic colour per label.

Boxes come from a JSON file written by the user, or from weight-free detectors: ``motion``
(what differs from the temporal-median background of the source frames; a static camera) and
``faces`` (the LBP frontal-face cascade shipped with scikit-image).

JSON: a list of boxes, or ``{"width": W, "height": H, "boxes": [...]}`` when the coordinates are
in a W x H image other than the frame (they are then scaled). Each box is
``{"label": "car", "x0": 10, "y0": 20, "x1": 200, "y1": 120, "color": "#ff8800"}`` in pixels;
``color`` (hex or [r, g, b]) is optional.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from pdedit.errors import BadInput

__all__ = ["Box", "BOX_METHODS", "label_color", "read_boxes", "draw_boxes", "motion_boxes", "face_boxes", "to_boxes"]

BOX_METHODS = ("json", "motion", "faces")


@dataclass(frozen=True)
class Box:
    """One labelled box in pixel coordinates of the frame: x0 < x1, y0 < y1 (x1, y1 exclusive)."""

    label: str
    x0: int
    y0: int
    x1: int
    y1: int
    color: tuple[int, int, int] | None = None


def label_color(label: str) -> tuple[int, int, int]:
    """A bright RGB colour that depends only on the label (same in every run and process)."""
    digest = hashlib.sha1(label.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255 + 0.5), int(g * 255 + 0.5), int(b * 255 + 0.5)


def _parse_color(value: Any, where: str) -> tuple[int, int, int]:
    """'#rrggbb' or [r, g, b] -> an RGB tuple, or BadInput naming the box."""
    if isinstance(value, str) and len(value.lstrip("#")) == 6:
        try:
            raw = int(value.lstrip("#"), 16)
        except ValueError:
            raw = -1
        if raw >= 0:
            return (raw >> 16) & 255, (raw >> 8) & 255, raw & 255
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(type(c) is int and 0 <= c <= 255 for c in value):
        return int(value[0]), int(value[1]), int(value[2])
    raise BadInput(f"{where}: color {value!r} is neither '#rrggbb' nor [r, g, b] with values 0-255")


def _parse_box(item: Any, where: str, scale: tuple[float, float]) -> Box:
    """One JSON box -> Box in frame pixels, or BadInput naming what is wrong."""
    if not isinstance(item, dict):
        raise BadInput(f"{where} is not an object with label, x0, y0, x1, y1")
    missing = [k for k in ("label", "x0", "y0", "x1", "y1") if k not in item]
    if missing:
        raise BadInput(f"{where} lacks {', '.join(missing)} (each box needs label, x0, y0, x1, y1)")
    coords = []
    for key in ("x0", "y0", "x1", "y1"):
        value = item[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInput(f"{where}: {key}={value!r} is not a number")
        coords.append(value * (scale[0] if key[0] == "x" else scale[1]))
    x0, y0, x1, y1 = (int(round(c)) for c in coords)
    if x1 <= x0 or y1 <= y0:
        raise BadInput(f"{where}: needs x0 < x1 and y0 < y1, got ({x0}, {y0}, {x1}, {y1})")
    color = _parse_color(item["color"], where) if item.get("color") is not None else None
    return Box(str(item["label"]), x0, y0, x1, y1, color)


def read_boxes(source: str | Path | Sequence[Any], size: tuple[int, int]) -> list[Box]:
    """Boxes from a JSON file path, a JSON-like list/dict, or Box objects, in pixels of ``size`` (w, h)."""
    name = "boxes"
    data: Any = source
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise BadInput(f"boxes file {path} does not exist")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadInput(f"boxes file {path} is not valid JSON: {err}") from None
    scale = (1.0, 1.0)
    if isinstance(data, dict):
        if "boxes" not in data:
            raise BadInput(f"{name}: an object needs a 'boxes' list (optionally with width and height)")
        if "width" in data or "height" in data:
            ref_w, ref_h = data.get("width"), data.get("height")
            if not all(isinstance(v, (int, float)) and v > 0 for v in (ref_w, ref_h)):
                raise BadInput(f"{name}: width and height must both be positive numbers, got {ref_w}, {ref_h}")
            scale = (size[0] / ref_w, size[1] / ref_h)
        data = data["boxes"]
    if not isinstance(data, (list, tuple)):
        raise BadInput(f"{name}: expected a list of boxes")
    boxes = [b if isinstance(b, Box) else _parse_box(b, f"{name} box {i}", scale) for i, b in enumerate(data)]
    w, h = size
    for i, b in enumerate(boxes):
        if b.x1 <= 0 or b.y1 <= 0 or b.x0 >= w or b.y0 >= h:
            raise BadInput(f"{name} box {i} ({b.label}: {b.x0},{b.y0},{b.x1},{b.y1}) lies outside the "
                           f"{w}x{h} image; give pixel coordinates, or width/height of the image they refer to")
    return boxes


def draw_boxes(boxes: Iterable[Box], size: tuple[int, int], thickness: int | None = None) -> np.ndarray:
    """Box outlines on black (H, W, 3), drawn inside each box, in the box's or its label's colour."""
    w, h = size
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    t = thickness or max(2, round(min(w, h) / 100))
    for b in boxes:
        color = b.color or label_color(b.label)
        x0, y0 = max(b.x0, 0), max(b.y0, 0)
        x1, y1 = min(b.x1, w), min(b.y1, h)
        # Four filled strips, so the outline lies exactly inside [x0, x1) x [y0, y1).
        canvas[y0:y1, x0:min(x0 + t, x1)] = color
        canvas[y0:y1, max(x1 - t, x0):x1] = color
        canvas[y0:min(y0 + t, y1), x0:x1] = color
        canvas[max(y1 - t, y0):y1, x0:x1] = color
    return canvas


def motion_boxes(frames: Sequence[np.ndarray], min_area: float = 0.001, threshold: float = 30.0,
                 label: str = "moving", max_side: int = 256) -> list[Box]:
    """Boxes around what moves in ``frames`` (static camera), located in the last frame."""
    if len(frames) < 3:
        raise BadInput("moving-object boxes need at least 3 source frames (--method motion reads a video)")
    h, w = frames[-1].shape[:2]
    scale = min(1.0, max_side / max(h, w))  # boxes need no fine detail: work on small frames
    small = [cv2.resize(f, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1
             else cv2.GaussianBlur(f, (3, 3), 0) for f in frames]
    # The per-pixel median over time is the background wherever an object covers a pixel for less
    # than half the clip. OpenCV's MOG2 was measured here on a 40 px square moving 5 px a frame for
    # 20 frames: it absorbs the overlapping part of the object and boxes only its leading 10 px.
    stack = np.stack(small).astype(np.int16)  # (T, h, w, 3)
    background = np.median(stack, axis=0)
    deviation = np.abs(stack - background).max(axis=3)  # (T, h, w)
    # A pixel that flickers all along (noise, water, leaves) needs a larger change to count.
    fg = (deviation[-1] > threshold + 3.0 * np.median(deviation, axis=0)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    fg = cv2.morphologyEx(cv2.morphologyEx(fg, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel, iterations=2)
    count, _, stats, _ = cv2.connectedComponentsWithStats(fg)
    sh, sw = fg.shape
    boxes = [Box(label, int(x / scale), int(y / scale), min(w, round((x + bw) / scale)),
                 min(h, round((y + bh) / scale)))
             for x, y, bw, bh, area in stats[1:count] if area >= min_area * sw * sh]
    return sorted(boxes, key=lambda b: (b.x1 - b.x0) * (b.y1 - b.y0), reverse=True)


def face_boxes(frame: np.ndarray, label: str = "face", max_side: int = 512) -> list[Box]:
    """Frontal faces found by scikit-image's LBP cascade (detected at most ``max_side`` wide)."""
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    detector = Cascade(lbp_frontal_face_cascade_filename())
    h, w = frame.shape[:2]
    scale = min(1.0, max_side / max(h, w))  # the cascade's cost grows with area: cap it
    small = frame if scale == 1.0 else cv2.resize(frame, (round(w * scale), round(h * scale)),
                                                 interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
    # 8 neighbouring hits (not the default 4) drop most of the cascade's false faces in texture.
    found = detector.detect_multi_scale(img=gray, scale_factor=1.2, step_ratio=1, min_size=(24, 24),
                                        max_size=gray.shape[::-1], min_neighbor_number=8)
    rects = [(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]) for d in found]
    return [Box(label, *(round(v / scale) for v in r)) for r in _merge_overlapping(rects)]


def _merge_overlapping(rects: list[tuple[int, int, int, int]], min_overlap: float = 0.3) -> list[tuple[int, ...]]:
    """Average each group of rectangles that overlap (intersection over the smaller area)."""
    # A cascade fires several times around one face, at nearby positions and scales.
    groups: list[list[tuple[int, int, int, int]]] = []
    for r in sorted(rects):
        for group in groups:
            g = group[0]
            iw = min(r[2], g[2]) - max(r[0], g[0])
            ih = min(r[3], g[3]) - max(r[1], g[1])
            smaller = min((r[2] - r[0]) * (r[3] - r[1]), (g[2] - g[0]) * (g[3] - g[1]))
            if iw > 0 and ih > 0 and iw * ih >= min_overlap * smaller:
                group.append(r)
                break
        else:
            groups.append([r])
    return [tuple(int(round(v)) for v in np.mean(group, axis=0)) for group in groups]


def to_boxes(frame: np.ndarray, *, method: str | None = None, boxes: Any = None,
             video_frames: Sequence[np.ndarray] | None = None, **_: object) -> np.ndarray:
    """Boxes on black at the frame's size: from ``boxes`` (JSON path or list), motion or faces.

    With no method: ``boxes`` when given, else motion when ``video_frames`` are given.
    """
    h, w = frame.shape[:2]
    if method is None:
        method = "json" if boxes is not None else "motion" if video_frames is not None else None
    if method is None:
        raise BadInput("boxes need a source: --boxes FILE.json, --method faces, or --method motion on a video")
    if method not in BOX_METHODS:
        raise BadInput(f"unknown boxes method {method!r}; use one of {', '.join(BOX_METHODS)}")
    if method == "json":
        if boxes is None:
            raise BadInput("boxes --method json needs --boxes FILE.json")
        found = read_boxes(boxes, (w, h))
    elif method == "faces":
        found = face_boxes(frame)
    else:
        if video_frames is None:
            raise BadInput("boxes --method motion needs the source video's frames: annotate a video file, not an image")
        frames = list(video_frames)
        found = motion_boxes(frames)
        fh, fw = frames[-1].shape[:2]
        if (fw, fh) != (w, h):  # found in source-frame pixels: scale to the frame being converted
            sx, sy = w / fw, h / fh
            found = [Box(b.label, round(b.x0 * sx), round(b.y0 * sy), round(b.x1 * sx), round(b.y1 * sy))
                     for b in found]
    return draw_boxes(found, (w, h))
