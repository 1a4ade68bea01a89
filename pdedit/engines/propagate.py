"""The weight-free propagate engine: carries edited keyframes along the source video's own optical flow.

How one output frame ``t`` between keyframes ``a < t < b`` is made:

1. **Global appearance transfer.** For each keyframe ``k`` a 3D colour lookup table ``G_k`` is fitted
   from the source keyframe ``S_k`` to its edit ``E_k`` (a robust least-squares trilinear LUT, so a
   painted patch does not tint the whole table). ``G_k(S_t)`` is the edit's colour/tone change applied
   to the source frame: it reaches every pixel, including content no keyframe shows.
2. **Local residual, carried by flow.** What the table cannot explain, ``R_k = E_k - G_k(S_k)``
   (painted marks, outlines, texture), belongs to the objects of the keyframe. DIS optical flow of the
   source (both directions, at a reduced resolution) is chained into a map from frame ``t`` back to
   keyframe ``a`` (forward carry) and to keyframe ``b`` (backward carry); the residual is sampled once
   through that map, so it is not blurred by repeated resampling and the source's own detail stays.
3. **Confidence.** A forward/backward consistency check (Sundaram et al., ECCV 2010) per frame pair,
   multiplied along the chain, says where a carried residual is trustworthy; it drops to 0 in
   occlusions and where content enters the frame. There the estimate falls back to ``G_k(S_t)``.
4. **Blend.** ``estimate_k = G_k(S_t) + c_k * carried R_k``; the two estimates are averaged with
   weights ``(1 - w) (c_a + floor)`` and ``w (c_b + floor)``, ``w = (t - a) / (b - a)``. At a keyframe
   ``w`` is 0 or 1, the map is the identity and ``c = 1``, so the keyframe's edit is reproduced exactly.

Streaming: the clip is decoded twice (it is re-iterable). Pass 1 computes the flows and writes them to a
temporary file on disk; the backward carry then runs from the end to the start over those flows and
writes its per-frame state (displacement + confidence, at the flow resolution) to a second file; pass 2
decodes again, runs the forward carry and reads the backward state. The files are read and written with
positioned I/O (not memory-mapped, so the resident memory stays flat); memory depends on the frame
size, never on the clip length. Disk use is 20 bytes per pixel of the flow resolution per frame (flows as
float16, backward state as float32): about 2.3 GB for 1394 frames at 384x216, removed when rendering ends.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import sparse
from scipy.sparse.linalg import cg
from tqdm.auto import tqdm

from pdedit.errors import BadInput

logger = logging.getLogger(__name__)

__all__ = [
    "PropagateConfig",
    "ColourMap",
    "fit_colour_map",
    "FlowEstimator",
    "flow_confidence",
    "carry_step",
    "propagate",
    "PropagateEngine",
]

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_LUT_LEVELS = 128  # dense table resolution per channel: index = value >> 1


@dataclass(frozen=True)
class PropagateConfig:
    """Settings of the propagate engine.

    Args:
        flow_side: long side (pixels) of the resolution the flow is computed and chained at; frames
            smaller than this are used at full size.
        preset: DIS optical-flow preset, "ultrafast", "fast" or "medium".
        lut_grid: nodes per channel of the fitted colour table (17 = a 16-step grid).
        floor: weight a keyframe's plain colour transfer keeps where its flow does not reach; it makes
            the two colour transfers cross-fade by position where neither carry is confident.
        feather: width (fraction of the flow frame's long side) of the blur that softens the edge of the
            region a carry reaches, so it does not show as a seam.
    """

    flow_side: int = 384
    preset: str = "medium"
    lut_grid: int = 17
    floor: float = 0.05
    feather: float = 0.015


# ---------------------------------------------------------------- 1. global colour mapping


def _trilinear_weights(values: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """For (n, 3) colours in [0, 255]: indices (n, 8) of the enclosing grid nodes and weights (n, 8)."""
    u = values.astype(np.float64) * ((grid - 1) / 255.0)
    i0 = np.clip(np.floor(u).astype(np.int64), 0, grid - 2)
    f = u - i0
    idx = np.empty((len(values), 8), np.int64)
    wts = np.empty((len(values), 8), np.float64)
    for corner in range(8):
        bits = [(corner >> 2) & 1, (corner >> 1) & 1, corner & 1]
        node = [i0[:, c] + bits[c] for c in range(3)]
        idx[:, corner] = (node[0] * grid + node[1]) * grid + node[2]
        w = np.ones(len(values))
        for c in range(3):
            w *= f[:, c] if bits[c] else 1.0 - f[:, c]
        wts[:, corner] = w
    return idx, wts


def _second_differences(grid: int) -> sparse.csr_matrix:
    """Second differences along each axis of a grid^3 lattice: zero on affine colour maps."""
    d1 = sparse.diags([np.ones(grid - 2), -2 * np.ones(grid - 2), np.ones(grid - 2)], [0, 1, 2], shape=(grid - 2, grid))
    eye = sparse.identity(grid)
    blocks = [
        sparse.kron(sparse.kron(d1, eye), eye),
        sparse.kron(sparse.kron(eye, d1), eye),
        sparse.kron(sparse.kron(eye, eye), d1),
    ]
    return sparse.vstack(blocks).tocsr()


def _interp_matrix(grid: int, levels: int) -> np.ndarray:
    """(levels, grid) linear-interpolation weights evaluating grid nodes at the centre of each level bin."""
    step = 256 // levels
    u = (np.arange(levels) * step + (step - 1) / 2.0) * ((grid - 1) / 255.0)
    i0 = np.clip(np.floor(u).astype(int), 0, grid - 2)
    f = u - i0
    m = np.zeros((levels, grid))
    m[np.arange(levels), i0] = 1.0 - f
    m[np.arange(levels), i0 + 1] = f
    return m


def _identity_nodes(grid: int) -> np.ndarray:
    """(grid^3, 3) node values of the identity colour map (the starting point of the fit)."""
    axis = np.linspace(0.0, 255.0, grid)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)


@dataclass(frozen=True)
class ColourMap:
    """A 3D colour lookup table: ``nodes`` (K, K, K, 3) and its dense uint8 table for fast lookup."""

    nodes: np.ndarray
    table: np.ndarray  # (128**3, 3) uint8, indexed by the colour with each channel >> 1

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Map a uint8 (H, W, 3) RGB frame through the table; returns uint8 (H, W, 3)."""
        q = (frame >> 1).astype(np.int32)
        idx = (q[..., 0] * _LUT_LEVELS + q[..., 1]) * _LUT_LEVELS + q[..., 2]
        return np.take(self.table, idx, axis=0)


def fit_colour_map(
    source: np.ndarray,
    edited: np.ndarray,
    *,
    grid: int = 17,
    iterations: int = 3,
    max_samples: int = 40000,
    smooth: float = 0.02,
    robust_scale: float = 12.0,
) -> ColourMap:
    """Fit a 3D LUT taking ``source`` colours to ``edited`` colours (both uint8 (H, W, 3) RGB).

    The table is the least-squares trilinear LUT with a second-difference penalty (so colours the
    keyframe lacks follow the nearest affine trend), refitted with Cauchy weights so pixels changed
    by a local edit (a painted patch) are treated as outliers and left to the flow-carried residual.
    """
    if source.shape != edited.shape:
        raise ValueError(f"source {source.shape} and edited {edited.shape} keyframes differ in shape")
    src = source.reshape(-1, 3)
    dst = edited.reshape(-1, 3).astype(np.float64)
    if len(src) > max_samples:
        pick = np.random.default_rng(0).choice(len(src), max_samples, replace=False)
        src, dst = src[pick], dst[pick]
    n, k3 = len(src), grid**3
    idx, wts = _trilinear_weights(src, grid)
    a = sparse.csr_matrix((wts.ravel(), (np.repeat(np.arange(n), 8), idx.ravel())), shape=(n, k3))
    d = _second_differences(grid)
    reg = smooth * (n / k3) * (d.T @ d)
    weight = np.ones(n)
    nodes = _identity_nodes(grid)
    for _ in range(iterations):
        atw = a.T.multiply(weight).tocsr()
        lhs = (atw @ a + reg + 1e-6 * sparse.identity(k3)).tocsr()
        rhs = atw @ dst
        jacobi = sparse.diags(1.0 / lhs.diagonal())
        # Conjugate gradients, warm-started from the previous fit (the normal equations are SPD).
        nodes = np.stack(
            [cg(lhs, rhs[:, c], x0=nodes[:, c], rtol=1e-7, maxiter=500, M=jacobi)[0] for c in range(3)], axis=1
        )
        err = np.linalg.norm(a @ nodes - dst, axis=1)
        weight = 1.0 / (1.0 + (err / robust_scale) ** 2)
    nodes = nodes.reshape(grid, grid, grid, 3).astype(np.float32)
    m = _interp_matrix(grid, _LUT_LEVELS).astype(np.float32)
    dense = np.tensordot(m, nodes, axes=(1, 0))  # (L, K, K, 3): trilinear interpolation is separable
    dense = np.tensordot(m, dense, axes=(1, 1)).transpose(1, 0, 2, 3)  # (L, L, K, 3)
    dense = np.tensordot(m, dense, axes=(1, 2))  # (L, L, L, 3) with the axes in the order (b, r, g, c)
    np.clip(dense, 0.0, 255.0, out=dense)
    dense += 0.5
    table = np.ascontiguousarray(dense.astype(np.uint8).transpose(1, 2, 0, 3)).reshape(-1, 3)
    return ColourMap(nodes=nodes, table=table)


# ---------------------------------------------------------------- 2. flow, confidence, carrying


class FlowEstimator:
    """DIS optical flow on grey frames at a reduced resolution ``size`` (w, h)."""

    def __init__(self, size: tuple[int, int], preset: str = "medium"):
        if preset not in _PRESETS:
            raise BadInput(f"flow preset {preset!r} is not one of {', '.join(_PRESETS)}")
        self.size = size
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[preset])

    def grey(self, frame: np.ndarray) -> np.ndarray:
        """The uint8 grey frame at the flow resolution."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if (grey.shape[1], grey.shape[0]) != self.size:
            grey = cv2.resize(grey, self.size, interpolation=cv2.INTER_AREA)
        return grey

    def __call__(self, grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
        """Flow (h, w, 2) float32 from a to b: ``a(x) ~ b(x + flow(x))``."""
        return self._dis.calc(grey_a, grey_b, None)


@functools.lru_cache(maxsize=4)
def _grid(h: int, w: int) -> np.ndarray:
    """Pixel coordinates (h, w, 2) float32, x then y (cached and read-only: every frame needs them)."""
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grid = np.dstack([xs, ys])
    grid.setflags(write=False)
    return grid


def _sample(image: np.ndarray, coords: np.ndarray, border: int, value: float = 0.0) -> np.ndarray:
    """Bilinear sample of ``image`` at absolute ``coords`` (h, w, 2)."""
    return cv2.remap(image, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR, borderMode=border, borderValue=value)


def flow_confidence(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """Per-pixel confidence (h, w) in [0, 1] of ``flow_ab`` from forward/backward consistency.

    Sundaram, Brox and Keutzer (ECCV 2010): a pixel of frame a is occluded when following the flow to b
    and back does not return to it, ``|w + w'|^2 > 0.01 (|w|^2 + |w'|^2) + 0.5``. A soft ramp from that
    threshold to four times it replaces the hard test; pixels whose flow leaves the frame get 0.
    """
    h, w = flow_ab.shape[:2]
    target = _grid(h, w) + flow_ab
    back = _sample(flow_ba, target, cv2.BORDER_REPLICATE)
    loop = flow_ab + back
    d2 = loop[..., 0] ** 2 + loop[..., 1] ** 2
    thr = 0.01 * (flow_ab[..., 0] ** 2 + flow_ab[..., 1] ** 2 + back[..., 0] ** 2 + back[..., 1] ** 2) + 0.5
    conf = np.clip((4.0 * thr - d2) / (3.0 * thr), 0.0, 1.0)
    inside = (target[..., 0] >= 0) & (target[..., 0] <= w - 1) & (target[..., 1] >= 0) & (target[..., 1] <= h - 1)
    return (conf * inside).astype(np.float32)


def carry_step(state: np.ndarray, flow_to_prev: np.ndarray, flow_from_prev: np.ndarray) -> np.ndarray:
    """Advance a carry state one frame along the flow.

    ``state`` (h, w, 3) holds, for each pixel of the previous frame, the displacement (x, y) to its
    position in the keyframe and the confidence; ``flow_to_prev`` maps the new frame to the previous one
    and ``flow_from_prev`` the other way (for the consistency check). Returns the new frame's state.
    """
    h, w = state.shape[:2]
    grid = _grid(h, w)
    target = grid + flow_to_prev
    absolute = _sample(state[..., :2] + grid, target, cv2.BORDER_REPLICATE)
    conf = _sample(np.ascontiguousarray(state[..., 2]), target, cv2.BORDER_CONSTANT, 0.0)
    conf *= flow_confidence(flow_to_prev, flow_from_prev)
    out = np.empty((h, w, 3), np.float32)
    out[..., :2] = absolute - grid
    out[..., 2] = conf
    return out


def _identity_state(h: int, w: int) -> np.ndarray:
    """The carry state at a keyframe: no displacement, full confidence."""
    state = np.zeros((h, w, 3), np.float32)
    state[..., 2] = 1.0
    return state


class _DiskFrames:
    """Fixed-shape float arrays in a temporary file, written and read by index with positioned I/O."""

    def __init__(self, folder: str, name: str, count: int, shape: tuple[int, ...], dtype=np.float32):
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.nbytes = int(np.prod(shape)) * self.dtype.itemsize
        self._fd = os.open(os.path.join(folder, name), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self._fd, self.nbytes * count)

    def put(self, index: int, array: np.ndarray) -> None:
        """Write one array at ``index``."""
        os.pwrite(self._fd, np.ascontiguousarray(array, dtype=self.dtype).tobytes(), index * self.nbytes)

    def get(self, index: int) -> np.ndarray:
        """Read the array at ``index``."""
        data = os.pread(self._fd, self.nbytes, index * self.nbytes)
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape).astype(np.float32)

    def close(self) -> None:
        """Close the file (the temporary folder removes it)."""
        os.close(self._fd)


# ---------------------------------------------------------------- 3. the two passes


def _flow_size(size: tuple[int, int], flow_side: int) -> tuple[int, int]:
    """The (w, h) the flow is computed at: the long side at most ``flow_side``, aspect kept."""
    w, h = size
    scale = min(1.0, flow_side / max(w, h))
    return max(16, round(w * scale)), max(16, round(h * scale))


def _apply_residual(residual: np.ndarray, state: np.ndarray, size: tuple[int, int],
                    feather: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample a keyframe residual through a (flow-resolution) carry state; returns (carried, confidence)."""
    w, h = size
    sh, sw = state.shape[:2]
    if not state[..., :2].any():  # at a keyframe: the identity, sampled exactly
        conf = state[..., 2] if (sw, sh) == (w, h) else cv2.resize(state[..., 2], size, interpolation=cv2.INTER_LINEAR)
        return residual, conf[..., None]
    # Feather the confidence so the edge of what a carry reaches is not a visible seam.
    if feather > 0:
        soft = cv2.GaussianBlur(state[..., 2], (0, 0), feather * max(sw, sh), borderType=cv2.BORDER_REPLICATE)
        state = np.dstack([state[..., :2], soft])
    full = cv2.resize(state, size, interpolation=cv2.INTER_LINEAR) if (sw, sh) != (w, h) else state
    disp = full[..., :2] * np.array([w / sw, h / sh], np.float32)
    carried = _sample(residual, _grid(h, w) + disp, cv2.BORDER_REPLICATE)
    return carried, full[..., 2:3]


def _segments(keys: Sequence[int], n: int) -> list[tuple[int | None, int | None]]:
    """Per frame, the keyframe before (or at) it and the keyframe after it (None past the last one)."""
    out = []
    for t in range(n):
        before = max(k for k in keys if k <= t)
        after = [k for k in keys if k > t]
        out.append((before, after[0] if after and before != t else None))
    return out


def propagate(
    frames: Iterable[np.ndarray],
    keyframes: Mapping[int, np.ndarray],
    *,
    num_frames: int | None = None,
    config: PropagateConfig = PropagateConfig(),
    progress: bool = False,
) -> Iterator[np.ndarray]:
    """Carry edited keyframes over a source clip; yields one uint8 (H, W, 3) frame per source frame.

    Args:
        frames: the source frames, uint8 (H, W, 3) RGB; must be re-iterable (a list or a
            ``pdedit.video.Clip``): it is read twice, streaming.
        keyframes: frame index -> edited frame at the source size; index 0 is required. With only
            index 0 this is basic mode: the edit is carried forward to the end.
        num_frames: the clip length (``len(frames)`` when omitted).
        config: flow and colour-table settings.
        progress: show tqdm bars on stderr.
    """
    n = len(frames) if num_frames is None else num_frames  # type: ignore[arg-type]
    keys = sorted(keyframes)
    if not keys or keys[0] != 0:
        raise ValueError("the propagate engine needs an edited first frame (keyframe 0)")
    if keys[-1] >= n:
        raise ValueError(f"keyframe {keys[-1]} is past the end of a {n}-frame clip")
    segments = _segments(keys, n)
    with tempfile.TemporaryDirectory(prefix="pdedit-propagate-") as folder:
        yield from _render(frames, keyframes, keys, segments, n, folder, config, progress)


def _render(frames, keyframes, keys, segments, n, folder, config, progress) -> Iterator[np.ndarray]:
    """The two passes of :func:`propagate`, with temporary files in ``folder``."""
    # Pass 1: flows of every pair, both directions; colour tables and residuals of the keyframes.
    flows = maps = None
    estimator = prev_grey = None
    size = None
    tables: dict[int, ColourMap] = {}
    residuals: dict[int, np.ndarray] = {}
    count = 0
    try:
        for t, frame in enumerate(tqdm(frames, total=n, desc="propagate: flow", disable=not progress)):
            if size is None:
                size = (frame.shape[1], frame.shape[0])
                estimator = FlowEstimator(_flow_size(size, config.flow_side), config.preset)
                fw, fh = estimator.size
                flows = _DiskFrames(folder, "flows.bin", max(n - 1, 1), (fh, fw, 4), np.float16)
                maps = _DiskFrames(folder, "backward.bin", n, (fh, fw, 3), np.float32)
            grey = estimator.grey(frame)
            if t > 0:
                # [flow t-1 -> t, flow t -> t-1] stored at index t-1
                flows.put(t - 1, np.dstack([estimator(prev_grey, grey), estimator(grey, prev_grey)]))
            prev_grey = grey
            if t in keyframes:
                edit = keyframes[t]
                if edit.shape != frame.shape:
                    raise ValueError(f"keyframe {t} is {edit.shape}, the source frames are {frame.shape}")
                tables[t] = fit_colour_map(frame, edit, grid=config.lut_grid)
                residuals[t] = edit.astype(np.float32) - tables[t](frame).astype(np.float32)
            count += 1
        if count != n:
            raise BadInput(f"the source clip gave {count} frames, {n} were expected")
        fw, fh = estimator.size

        # Backward carry, from the end to the start, over the stored flows.
        state = None
        for t in range(n - 1, -1, -1):
            after = segments[t][1]
            if t in keyframes:
                state = _identity_state(fh, fw)
            elif after is not None:
                pair = flows.get(t)
                state = carry_step(state, pair[..., :2], pair[..., 2:])
            else:
                continue
            maps.put(t, state)

        # Pass 2: forward carry, blend with the backward carry, emit.
        forward = None
        floor = config.floor
        for t, frame in enumerate(tqdm(frames, total=n, desc="propagate: render", disable=not progress)):
            before, after = segments[t]
            if t in keyframes:
                forward = _identity_state(fh, fw)
            else:
                pair = flows.get(t - 1)
                forward = carry_step(forward, pair[..., 2:], pair[..., :2])
            carried_a, conf_a = _apply_residual(residuals[before], forward, size, config.feather)
            estimate_a = tables[before](frame).astype(np.float32) + conf_a * carried_a
            if after is None:
                out = estimate_a
            else:
                carried_b, conf_b = _apply_residual(residuals[after], maps.get(t), size, config.feather)
                estimate_b = tables[after](frame).astype(np.float32) + conf_b * carried_b
                pos = (t - before) / (after - before)
                weight_a = (1.0 - pos) * (conf_a + floor)
                weight_b = pos * (conf_b + floor)
                out = (weight_a * estimate_a + weight_b * estimate_b) / (weight_a + weight_b)
            np.clip(out, 0.0, 255.0, out=out)
            out += 0.5  # round half up on the way to uint8 (values are non-negative now)
            yield out.astype(np.uint8)
    finally:
        for store in (flows, maps):
            if store is not None:
                store.close()


# ---------------------------------------------------------------- the engine


class PropagateEngine:
    """Engine ``propagate``: no weights; edits the source clip by carrying the edited keyframes."""

    name = "propagate"

    def __init__(self, config: PropagateConfig | None = None):
        self.config = config or PropagateConfig()

    def render(self, job, progress: bool = False) -> Iterator[np.ndarray]:
        """Yield ``job.num_frames`` edited frames of ``job.source`` at ``job.size``."""
        if job.source is None:
            raise BadInput("the propagate engine edits a video and cannot generate from nothing: give it a source clip")
        n = len(job.source)
        if job.num_frames != n:
            raise ValueError(f"job asks for {job.num_frames} frames but the source clip has {n}")
        keyframes = {0: job.first}
        keyframes.update(job.keyframes or {})
        if job.last is not None:
            keyframes[n - 1] = job.last
        return propagate(job.source, keyframes, num_frames=n, config=self.config, progress=progress)
