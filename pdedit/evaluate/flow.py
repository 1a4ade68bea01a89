"""Optical flow for the edit metrics: DIS flow, the occlusion test, and warping along a flow.

The metrics judge an edited clip by the *source's* motion, so the flow here is always computed the
same way on every clip (OpenCV's DIS, grey frames at a capped resolution) and its figures are given in
pixels of the frames that were passed in, whatever resolution the flow ran at.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["FLOW_SIDE", "dis_flow", "non_occluded", "warp_back"]

# Long side of the resolution the flow runs at: DIS is robust there and costs ~10 ms a pair.
FLOW_SIDE = 384


def _grey(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 grey frame at ``size`` (w, h)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if (grey.shape[1], grey.shape[0]) != size:
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def dis_flow(frame_a: np.ndarray, frame_b: np.ndarray, flow_side: int = FLOW_SIDE) -> np.ndarray:
    """Dense flow (H, W, 2) float32 from RGB ``frame_a`` to ``frame_b``: ``a(x) ~ b(x + flow(x))``.

    DIS (medium preset) runs at a long side of at most ``flow_side``; the flow is scaled back to the
    frames' own size and pixel units.
    """
    h, w = frame_a.shape[:2]
    scale = min(1.0, flow_side / max(h, w))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(_grey(frame_a, size), _grey(frame_b, size), None)
    if size != (w, h):
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
        flow[..., 0] *= w / size[0]
        flow[..., 1] *= h / size[1]
    return flow


def _grid(h: int, w: int) -> np.ndarray:
    """Pixel coordinates (h, w, 2) float32, x then y."""
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.dstack([xs, ys])


def warp_back(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` at ``x + flow(x)``: with the flow from frame b to a, frame a seen from b's grid."""
    h, w = flow.shape[:2]
    coords = _grid(h, w) + flow
    return cv2.remap(image, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def non_occluded(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of the pixels of frame a whose flow to b is trustworthy.

    The forward/backward test of Sundaram, Brox and Keutzer (ECCV 2010), as the warping error of Lai et
    al. (ECCV 2018) uses it: a pixel is occluded when going to b and back misses it,
    ``|w + w'|^2 > 0.01 (|w|^2 + |w'|^2) + 0.5``, or when its flow leaves the frame.
    """
    h, w = flow_ab.shape[:2]
    target = _grid(h, w) + flow_ab
    back = cv2.remap(flow_ba, target[..., 0], target[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = flow_ab + back
    d2 = (loop**2).sum(axis=2)
    thr = 0.01 * ((flow_ab**2).sum(axis=2) + (back**2).sum(axis=2)) + 0.5
    inside = (target[..., 0] >= 0) & (target[..., 0] <= w - 1) & (target[..., 1] >= 0) & (target[..., 1] <= h - 1)
    return (d2 <= thr) & inside
