"""Image instructions: everything that turns a frame into a PixelDance first- or last-frame instruction.

PixelDance (arXiv 2311.10982) conditions on a first and a last frame; both can be edited frames
(`apply_edit`: built-in ``auto:`` edits or local learned editors) and the last one can also be a
sketch, pose, boxes or depth map (`convert`), once the model is tuned for that kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pdedit.errors import BadInput
from pdedit.instructions.boxes import to_boxes
from pdedit.instructions.depth import to_depth
from pdedit.instructions.edits import EDITS
from pdedit.instructions.pose import to_pose
from pdedit.instructions.sketch import to_sketch
from pdedit.instructions.spec import EditSpec, describe_edits, is_edit_spec, parse_edit_spec

__all__ = [
    "EditSpec",
    "parse_edit_spec",
    "is_edit_spec",
    "describe_edits",
    "apply_edit",
    "convert",
    "EDITS",
    "CONVERTERS",
    "WEIGHT_FREE_CONVERSIONS",
    "gallery",
]


def _image(frame: np.ndarray, **_: object) -> np.ndarray:
    """The frame itself: an image instruction needs no conversion."""
    return frame


# kind -> converter(frame, *, method, annotator_dir, boxes, video_frames) -> uint8 (H, W, 3).
CONVERTERS: dict[str, Callable[..., np.ndarray]] = {
    "image": _image,
    "sketch": to_sketch,
    "pose": to_pose,
    "boxes": to_boxes,
    "depth": to_depth,
}

# (kind, method) pairs that need no weights and no extra input: what a gallery can always show.
WEIGHT_FREE_CONVERSIONS = (("sketch", "xdog"), ("sketch", "canny"), ("boxes", "faces"))


def _check_frame(frame: Any) -> np.ndarray:
    """The frame as a contiguous uint8 (H, W, 3) array, or BadInput saying what it is instead."""
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise BadInput(f"expected an RGB uint8 image (H, W, 3), got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def apply_edit(frame: np.ndarray, spec: str | EditSpec, *, edit_model: str | Path | None = None,
               steps: int = 20, seed: int = 0, progress: bool = False) -> np.ndarray:
    """Edit one keyframe with a spec.

    Args:
        frame: uint8 RGB (H, W, 3).
        spec: ``auto:<name>[:k=v,...]`` (weight-free), ``instruct:<text>`` (InstructPix2Pix) or
            ``img2img:<text>`` (Stable Diffusion img2img), or a parsed EditSpec.
        edit_model: local diffusers folder for instruct/img2img (ignored by auto edits).
        steps: denoising steps of learned edits.
        seed: seed of learned edits (auto edits are deterministic).
        progress: show the learned editor's progress bar.

    Returns:
        the edited frame, uint8 RGB of the same size.
    """
    frame = _check_frame(frame)
    parsed = parse_edit_spec(spec)
    if parsed.kind == "auto":
        out = EDITS[parsed.name](frame, **parsed.params)
    else:
        from pdedit.instructions.learned import learned_edit  # torch/diffusers only when needed

        out = learned_edit(frame, parsed.kind, parsed.text, edit_model=edit_model, steps=steps, seed=seed,
                           progress=progress)
    return np.ascontiguousarray(out, dtype=np.uint8)


def convert(frame: np.ndarray, kind: str, *, method: str | None = None, annotator_dir: str | Path | None = None,
            boxes: Any = None, video_frames: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Turn a frame into an instruction of ``kind``: image | sketch | pose | boxes | depth.

    Args:
        frame: uint8 RGB (H, W, 3).
        kind: "image" returns the frame; "sketch" black lines on white; "pose" a skeleton on
            black; "boxes" coloured boxes on black; "depth" a grey depth map.
        method: the kind's method (sketch: xdog, canny, silhouette, hed, pidinet, lineart; pose: openpose,
            openpose_full, mediapipe; boxes: json, motion, faces; depth: midas); None = default.
        annotator_dir: folder of controlnet-aux weight files (hed, pidinet, lineart, openpose, midas).
        boxes: a JSON file path, or a list of box dicts, for boxes from the user.
        video_frames: source frames, for moving-object boxes.

    Returns:
        uint8 RGB (H, W, 3) at the frame's size.
    """
    frame = _check_frame(frame)
    if kind not in CONVERTERS:
        raise BadInput(f"unknown instruction kind {kind!r}; use one of {', '.join(CONVERTERS)}")
    out = CONVERTERS[kind](frame, method=method, annotator_dir=annotator_dir, boxes=boxes,
                           video_frames=video_frames)
    return np.ascontiguousarray(out, dtype=np.uint8)


def gallery(frame: np.ndarray, ref: str | Path | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Every weight-free edit and converter applied to one frame, to pick one by eye.

    Args:
        frame: uint8 RGB (H, W, 3).
        ref: reference image for the ``colortransfer`` edit; None leaves that tile out.

    Returns:
        (tiles, labels): the frame itself first ("original"), then one tile per ``auto:`` edit and per
        weight-free (kind, method) conversion, each labelled with the spec or ``kind:method`` that makes it.
    """
    frame = _check_frame(frame)
    tiles, labels = [frame], ["original"]
    for name in EDITS:
        if name == "colortransfer" and ref is None:
            continue
        spec = f"auto:{name}:ref={ref}" if name == "colortransfer" else f"auto:{name}"
        tiles.append(apply_edit(frame, spec))
        labels.append(f"auto:{name}")
    for kind, method in WEIGHT_FREE_CONVERSIONS:
        tiles.append(convert(frame, kind, method=method))
        labels.append(f"{kind}:{method}")
    return tiles, labels
