"""Pose instructions: an OpenPose-style skeleton on black, from a frame.

``openpose`` (body) and ``openpose_full`` (body, hands, face) run controlnet-aux's OpenPose from
local weights. ``mediapipe`` uses the pose model bundled in the mediapipe wheel (an optional
extra, ``pip install pdedit[pose]``), drawn with the same OpenPose colours and limbs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pdedit.errors import BadInput, Unsupported
from pdedit.instructions.annotators import import_quietly, load_annotator, run_annotator

__all__ = ["POSE_METHODS", "to_pose", "draw_openpose", "MEDIAPIPE_TO_OPENPOSE"]

POSE_METHODS = ("openpose", "openpose_full", "mediapipe")

# OpenPose's 18 body keypoints (nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow,
# l-wrist, r-hip, r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear) as indices
# of MediaPipe's 33 landmarks; the neck (None) is the midpoint of the shoulders.
MEDIAPIPE_TO_OPENPOSE: tuple[int | None, ...] = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)


def draw_openpose(keypoints: Sequence[tuple[float, float] | None], size: tuple[int, int]) -> np.ndarray:
    """Draw 18 OpenPose keypoints (x, y normalised to [0, 1], None when unseen) on black, (H, W, 3)."""
    body = import_quietly("controlnet_aux.open_pose.body")
    util = import_quietly("controlnet_aux.open_pose.util")
    w, h = size
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    points = [None if p is None else body.Keypoint(float(p[0]), float(p[1])) for p in keypoints]
    return util.draw_bodypose(canvas, points)


def _mediapipe_keypoints(frame: np.ndarray, min_visibility: float = 0.5) -> list[tuple[float, float] | None]:
    """The 18 OpenPose keypoints of the most prominent person, from MediaPipe Pose (empty if none)."""
    try:
        import mediapipe as mp
    except ImportError:
        raise Unsupported("pose --method mediapipe needs mediapipe: pip install 'pdedit[pose]' "
                          "(or use --method openpose with --annotator-dir)") from None
    # model_complexity=1 is the model shipped inside the wheel, so this works offline.
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as estimator:
        result = estimator.process(np.ascontiguousarray(frame))
    if result.pose_landmarks is None:
        return []
    marks = result.pose_landmarks.landmark
    seen = [(m.x, m.y) if m.visibility >= min_visibility else None for m in marks]
    points: list[tuple[float, float] | None] = []
    for index in MEDIAPIPE_TO_OPENPOSE:
        if index is None:
            left, right = seen[11], seen[12]
            points.append(None if left is None or right is None else
                          ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2))
        else:
            points.append(seen[index])
    return points


def to_pose(frame: np.ndarray, *, method: str | None = None, annotator_dir: str | Path | None = None,
            **_: object) -> np.ndarray:
    """Skeleton on black (H, W, 3); ``method`` defaults to openpose (needs ``annotator_dir``)."""
    method = method or "openpose"
    if method not in POSE_METHODS:
        raise BadInput(f"unknown pose method {method!r}; use one of {', '.join(POSE_METHODS)}")
    h, w = frame.shape[:2]
    if method == "mediapipe":
        points = _mediapipe_keypoints(frame)
        return draw_openpose(points, (w, h)) if points else np.zeros_like(frame)
    detector = load_annotator("openpose", annotator_dir)
    full = method == "openpose_full"
    return run_annotator(detector, frame, include_body=True, include_hand=full, include_face=full)
