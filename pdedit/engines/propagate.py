"""The weight-free propagate engine: makes every frame what the keyframes' edit would have made of it.

An edit is modelled in three parts, each moved over the clip the way it belongs to the picture:

1. **Appearance, tied to the screen** (``pdedit.engines.appearance``): per keyframe ``k`` a global 3D
   colour table and a bilateral grid of local gains and offsets over screen position and luminance,
   fitted robustly on ``(S_k, E_k)``, and for a style that follows the picture's local structure a
   detail table over it (kept where it predicts one half of the keyframes from the other). ``M_k(S_t)``
   applies them to frame ``t`` at the same screen position: grades, hue shifts, vignettes and graduated
   filters reach every pixel, including content no keyframe shows (it changes only as much as the edit's
   gain implies), and a pencil drawing is redrawn from frame ``t``'s own detail.
2. **Residual** ``R_k = E_k - M_k(S_k)``: what the appearance leaves (paint, overlays with sharp edges,
   texture). Between two keyframes ``a < b`` each residual pixel is split between *moves with the
   content* and *stays on the screen*, from what the two keyframes agree on: the residual of ``a``
   followed along the source's flow to ``b`` (the object hypothesis) against the edit at the same screen
   position of ``b`` (the screen hypothesis, as a per-pixel blend ``e + alpha (m_t - m_k)``: alpha 1
   keeps an additive mark, 0 an opaque overlay). The object part is carried along DIS optical flow,
   chained from the keyframe and sampled once; a forward/backward consistency check (Sundaram et al.,
   ECCV 2010) multiplied along the chain says where it is trustworthy. Where neither keyframe's carry is
   confident, the frame keeps the screen-space estimate (appearance + screen part), never nothing.
3. **Scene cuts** end every carry: a pair of frames whose flow is unreliable almost everywhere and whose
   histograms differ is a cut, and no residual crosses it.

The two keyframes' estimates are blended by position in the clip (the object parts also by their
confidence). At a keyframe the blend weight is 0 or 1, the carry is the identity, and the keyframe's
edit is reproduced exactly.

Streaming, segment by segment: between consecutive keyframes ``a < b``, a look-ahead pass decodes
``a..b``, computes both flows of each pair and the forward carry, fits ``b``'s model, and writes the flows
to a temporary file; the backward carry then runs from ``b`` to ``a`` into a second file; the render pass
decodes ``a..b`` again and emits. The files hold one segment at a time, so disk grows with the longest
stretch between two keyframes (``disk_bytes``: 20 bytes per flow pixel per frame, about 1.7 MB per frame
at the default 384x216 flow resolution of a 16:9 clip), never with the clip; memory depends on the frame size only.
After the last keyframe (basic mode) the forward carry runs in the render pass with no temporary state.
Two worker threads compute the two flows of each pair side by side and blend a few frames ahead of the
one being yielded (OpenCV and numpy release the GIL), so a 2-core machine is kept busy.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm.auto import tqdm

from pdedit.engines.appearance import (
    IDENTITY,
    Appearance,
    ColourMap,
    DetailMap,
    ScreenGrid,
    fit_colour_map,
    fit_detail_map,
    fit_screen_grid,
    residual,
    robust_error,
    same_shot,
)
from pdedit.errors import BadInput

logger = logging.getLogger(__name__)

__all__ = [
    "PropagateConfig",
    "ColourMap",
    "fit_colour_map",
    "FlowEstimator",
    "flow_confidence",
    "carry_step",
    "is_cut",
    "disk_bytes",
    "propagate",
    "per_frame",
    "PropagateEngine",
]

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_FLOOR = 0.05  # weight a keyframe's screen-space estimate keeps where its carry reaches nothing
_IN_FLIGHT = 2  # frames whose blend may run ahead of the one being yielded (memory: a few frames)
SAME_SHOT = 0.12  # below this edge agreement (appearance.same_shot) a keyframe is not an edit of its frame


@dataclass(frozen=True)
class PropagateConfig:
    """Settings of the propagate engine.

    Args:
        flow_side: long side (pixels) of the resolution the flow is computed and chained at; frames
            smaller than this are used at full size.
        preset: DIS optical-flow preset, "ultrafast", "fast" or "medium".
        lut_grid: nodes per channel of the fitted colour table (17 = a 16-step grid).
        screen_cells: cells along the long side of the screen grid (0: the colour table alone).
        screen_bins: luminance bins of the screen grid.
        feather: width (fraction of the flow frame's long side) of the blur that softens the edge of the
            region a carry reaches, so neither it nor the flow's patch grid shows as a seam.
        detail: model what an edit adds as a function of each frame's local structure (a pencil drawing,
            outlines, a painterly look: ``appearance.DetailMap``) where that generalises from one half of the
            keyframes to the other, so the style is redrawn on content no carry reaches.
    """

    flow_side: int = 384
    preset: str = "medium"
    lut_grid: int = 17
    screen_cells: int = 8
    screen_bins: int = 1
    feather: float = 0.02
    detail: bool = True


# ---------------------------------------------------------------- 2. flow, confidence, carrying


@functools.lru_cache(maxsize=1)
def _workers() -> ThreadPoolExecutor:
    """The engine's worker threads: OpenCV and numpy release the GIL in their array work, so the two flows of
    a pair, or the blends of neighbouring frames, run side by side on two cores."""
    return ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="pdedit-propagate")


class FlowEstimator:
    """DIS optical flow on grey frames at a reduced resolution ``size`` (w, h)."""

    def __init__(self, size: tuple[int, int], preset: str = "medium"):
        if preset not in _PRESETS:
            raise BadInput(f"flow preset {preset!r} is not one of {', '.join(_PRESETS)}")
        self.size = size
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
        self._back = cv2.DISOpticalFlow_create(_PRESETS[preset])  # its own state, for the other direction

    def grey(self, frame: np.ndarray) -> np.ndarray:
        """The uint8 grey frame at the flow resolution."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if (grey.shape[1], grey.shape[0]) != self.size:
            grey = cv2.resize(grey, self.size, interpolation=cv2.INTER_AREA)
        return grey

    def __call__(self, grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
        """Flow (h, w, 2) float32 from a to b: ``a(x) ~ b(x + flow(x))``."""
        return self._dis.calc(grey_a, grey_b, None)

    def both(self, grey_a: np.ndarray, grey_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The flows a -> b and b -> a, computed side by side (what the consistency check needs)."""
        back = _workers().submit(self._back.calc, grey_b, grey_a, None)
        return self._dis.calc(grey_a, grey_b, None), back.result()


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


def carry_step(state: np.ndarray, flow_to_prev: np.ndarray, flow_from_prev: np.ndarray, cut: bool = False) -> np.ndarray:
    """Advance a carry state one frame along the flow.

    ``state`` (h, w, 3) holds, for each pixel of the previous frame, the displacement (x, y) to its
    position in the keyframe and the confidence; ``flow_to_prev`` maps the new frame to the previous one
    and ``flow_from_prev`` the other way (for the consistency check). Across a scene cut (``cut``) nothing
    is carried: the confidence is 0 everywhere. Returns the new frame's state.
    """
    h, w = state.shape[:2]
    if cut:
        return np.zeros((h, w, 3), np.float32)
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


def is_cut(grey_a: np.ndarray, grey_b: np.ndarray, confidence: np.ndarray) -> bool:
    """Whether two consecutive (flow-resolution, grey) frames straddle a scene cut.

    A cut leaves the flow unreliable almost everywhere *and* changes the picture's histogram; fast motion
    alone lowers the confidence but keeps the histogram, a flash changes the histogram but keeps the flow.
    """
    if confidence.mean() > 0.3:
        return False
    ha = cv2.calcHist([grey_a], [0], None, [32], [0, 256]).ravel()
    hb = cv2.calcHist([grey_b], [0], None, [32], [0, 256]).ravel()
    change = 0.5 * np.abs(ha / ha.sum() - hb / hb.sum()).sum()
    return change > 0.1 or float(np.abs(grey_a.astype(np.float32) - grey_b).mean()) > 15.0


def disk_bytes(size: tuple[int, int], frames: int, flow_side: int = PropagateConfig.flow_side) -> int:
    """Temporary disk for a longest stretch of ``frames`` frames between keyframes of a (w, h) clip.

    Per frame of the stretch: both flows (4 float16) and the backward carry state (3 float32) at the
    flow resolution.
    """
    w, h = _flow_size(size, flow_side)
    return frames * w * h * (8 + 12)


# ---------------------------------------------------------------- 3. the segments


def _flow_size(size: tuple[int, int], flow_side: int) -> tuple[int, int]:
    """The (w, h) the flow is computed at: the long side at most ``flow_side``, aspect kept."""
    w, h = size
    scale = min(1.0, flow_side / max(w, h))
    return max(16, round(w * scale)), max(16, round(h * scale))


def _upsample_state(state: np.ndarray, size: tuple[int, int], feather: float) -> tuple[np.ndarray, np.ndarray]:
    """A flow-resolution carry state at full size: (displacement (h, w, 2) in pixels, confidence (h, w)).

    The confidence is feathered first so the edge of what a carry reaches, and the DIS patch grid inside
    it, never show as seams. (Resizing is linear, so the displacement is scaled to pixels before it, on the
    small state.)
    """
    w, h = size
    sh, sw = state.shape[:2]
    conf = state[..., 2]
    if feather > 0:
        conf = cv2.GaussianBlur(conf, (0, 0), feather * max(sw, sh), borderType=cv2.BORDER_REPLICATE)
    if (sw, sh) == (w, h):
        return state[..., :2], np.ascontiguousarray(conf)
    disp = state[..., :2] * np.array([w / sw, h / sh], np.float32)
    return (cv2.resize(disp, size, interpolation=cv2.INTER_LINEAR),
            cv2.resize(conf, size, interpolation=cv2.INTER_LINEAR))


def _channels(weight: np.ndarray) -> np.ndarray:
    """A (h, w) weight as (h, w, 3): numpy multiplies same-shape arrays several times faster than it
    broadcasts a trailing axis of 1 against 3."""
    return cv2.merge([weight, weight, weight])


def _carry(image: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """Sample a keyframe-space image through a full-size displacement (to the keyframe)."""
    if not disp.any():
        return image
    h, w = disp.shape[:2]
    return _sample(image, _grid(h, w) + disp, cv2.BORDER_REPLICATE)


@dataclass
class _Key:
    """A keyframe and its appearance model for the segment being rendered."""

    index: int
    source: np.ndarray
    edit: np.ndarray
    lut: ColourMap  # the colour table fitted on this keyframe
    own: ScreenGrid | None  # the screen grid fitted on this keyframe alone, after its table
    own_misfit: float
    colours: ColourMap | None = None  # the colour table in use for the segment (``lut`` or IDENTITY)
    appearance: Appearance | None = None
    modelled: np.ndarray | None = None  # M_k(S_k), float32
    residual: np.ndarray | None = None  # E_k - M_k(S_k), float32
    # For the segment being rendered (``segment``): with ``share`` the part of the residual that stays on the
    # screen and ``alpha`` how the edit there follows the source, the screen estimate of a frame S_t is
    # ``keep * M_k(S_t) + follow * S_t + fixed``.
    on_screen: bool = False  # whether any of the residual stays on the screen
    keep: np.ndarray | None = None  # 1 - share, (h, w)
    follow: np.ndarray | None = None  # share * alpha, (h, w)
    fixed: np.ndarray | None = None  # share * (E_k - alpha S_k), (h, w, 3)
    moving: np.ndarray | None = None  # (1 - share) * residual: the part carried along the flow

    def use(self, screen: ScreenGrid | None, colours: ColourMap | None = None,
            detail: DetailMap | None = None) -> "_Key":
        """Set the segment's appearance model (``colours``, default the keyframe's table, then ``screen`` and
        ``detail``)."""
        self.colours = self.lut if colours is None else colours
        self.appearance = Appearance(self.colours, screen, (self.source.shape[1], self.source.shape[0]), detail)
        self.modelled = self.appearance(self.source)
        self.residual = residual(self.edit, self.modelled)
        return self

    def segment(self, share: np.ndarray, alpha: np.ndarray) -> None:
        """Set the segment's split of the residual (``share``, ``alpha``: (h, w, 1) from ``_screen_split``)."""
        self.on_screen = bool(share.max() > 0.0)
        self.keep = np.ascontiguousarray(1.0 - share[..., 0])
        self.follow = np.ascontiguousarray((share * alpha)[..., 0])
        self.fixed = share * (self.edit.astype(np.float32) - alpha * self.source.astype(np.float32))
        self.moving = (1.0 - share) * self.residual


def _fit_key(index: int, source: np.ndarray, edit: np.ndarray, config: PropagateConfig) -> _Key:
    """Fit one keyframe's colour table and its own screen grid."""
    if edit.shape != source.shape:
        raise ValueError(f"keyframe {index} is {edit.shape}, the source frames are {source.shape}")
    match = same_shot(source, edit)
    if match < SAME_SHOT:
        raise BadInput(f"keyframe {index} does not look like an edit of frame {index} of the clip: its edges line up "
                       f"with the frame's at {match:.2f} where an edit of the frame scores above {SAME_SHOT} (another "
                       "photo, another shot, or another part of the video?): export the frame with `pdedit frames` "
                       "and edit that, or check --start/--end")
    colours = fit_colour_map(source, edit, grid=config.lut_grid)
    own, misfit = None, 0.0
    if config.screen_cells > 0:
        own, (misfit,) = fit_screen_grid([(source, colours(source), edit)], cells=config.screen_cells,
                                         bins=config.screen_bins)
    return _Key(index, source, edit, colours, own, misfit).use(own)


def _pair_models(a: _Key, b: _Key, config: PropagateConfig) -> str:
    """Choose and fit the appearance model of a segment's two keyframes; returns its name.

    Two explanations of an edit compete, each fitted on both keyframes at once and judged by how well it
    explains them (robustly, so paint that moved does not count): content that moved between the
    keyframes shows which one the edit follows.

    - ``colour``: each keyframe's colour table (a grade, a hue shift, a look);
    - ``screen``: a screen grid alone (a vignette, a graduated filter): a colour table fitted on a
      vignetted keyframe would learn "white turns grey" from the darkened white marks in a corner and
      apply it to a white car entering the centre.

    The colour explanation wins ties. Either way the segment then gets one screen grid fitted on both
    keyframes (it sees more colours per cell, so it separates gains from offsets where one keyframe
    showed only a flat surface), kept only in the cells where the two keyframes' own grids agree: where
    they differ, the difference is paint that moved (the residual's business) or an edit that changed.
    """
    if config.screen_cells <= 0:
        return "colour"
    size = (a.source.shape[1], a.source.shape[0])

    def own(key: _Key, colours: ColourMap) -> ScreenGrid:
        return fit_screen_grid([(key.source, colours(key.source), key.edit)], cells=config.screen_cells,
                               bins=config.screen_bins)[0]

    # Each explanation fitted on both keyframes at once, then judged by how well it explains them
    # (robustly: paint that moved is an outlier to both).
    both_s, both_e = np.hstack([a.source, b.source]), np.hstack([a.edit, b.edit])
    colour_misfit = robust_error(fit_colour_map(both_s, both_e, grid=config.lut_grid)(both_s), both_e, 0.95)
    screen_joint, _ = fit_screen_grid([(k.source, k.source, k.edit) for k in (a, b)], cells=config.screen_cells,
                                      bins=config.screen_bins)
    screen_model = Appearance(IDENTITY, screen_joint, size)
    screen_misfit = 0.5 * sum(robust_error(screen_model(k.source), k.edit, 0.95) for k in (a, b))
    # On a scene of few colours (a grey parking lot) the grid fits a global grade about as well as the table
    # does, so the screen explanation must win clearly: by a fifth, and by half a level (about the table's
    # own quantisation).
    if screen_misfit + 0.5 < 0.8 * colour_misfit:
        name, colours, grids = "screen", (IDENTITY, IDENTITY), (own(a, IDENTITY), own(b, IDENTITY))
        joint = screen_joint  # already fitted on both keyframes with the identity table
    else:
        name, colours, grids = "colour", (a.lut, b.lut), (a.own, b.own)
        joint, _ = fit_screen_grid([(k.source, k.lut(k.source), k.edit) for k in (a, b)],
                                   cells=config.screen_cells, bins=config.screen_bins)
    # Per cell: 1 where the two own grids agree (gain within ~0.04, offset within ~6 levels), 0 where not.
    disagree = np.maximum(np.abs(grids[0].gain - grids[1].gain).max(-1, keepdims=True) / 0.04,
                          np.abs(grids[0].offset - grids[1].offset).max(-1, keepdims=True) / 6.0)
    agree = np.exp(-(disagree**2))
    shared = ScreenGrid(gain=1.0 + agree * (joint.gain - 1.0), offset=agree * joint.offset)
    if np.abs(shared.gain - 1.0).max() < 0.004 and np.abs(shared.offset).max() < 0.5:
        shared = None  # nothing tied to the screen (a global edit): the table alone, and a cheaper frame
    a.use(shared, colours[0])
    b.use(shared, colours[1])
    return name


def _fit_detail(keys: list[_Key], config: PropagateConfig) -> DetailMap | None:
    """Add one detail model to the keys' appearance models, when one generalises over them.

    The detail model is fitted on what one colour model leaves of every key (a table fitted on all of them
    at once, or the identity of a screen-tied edit): each key's own table would take a different part of a
    style, and what is left of the keys would not agree. When it is kept, the keys share that table.
    """
    for k in keys:
        if k.appearance.detail is not None:  # a key's model from the segment before: without it again
            k.use(k.appearance.screen, k.colours)
    if not config.detail:
        return None
    screen = keys[0].appearance.screen
    if len(keys) == 1 or keys[0].colours is IDENTITY:  # the keys' own model is that one: their residuals
        colours = keys[0].colours
        rests = [k.residual for k in keys]
    else:
        colours = fit_colour_map(np.hstack([k.source for k in keys]), np.hstack([k.edit for k in keys]),
                                 grid=config.lut_grid)
        base = Appearance(colours, screen, (keys[0].source.shape[1], keys[0].source.shape[0]))
        rests = [residual(k.edit, base(k.source)) for k in keys]
    detail = fit_detail_map([(k.source, rest) for k, rest in zip(keys, rests)], grid=config.lut_grid)
    if detail is not None:
        for k in keys:
            k.use(screen, colours, detail)
    return detail


def _local_slope(key: _Key, step: float = 8.0) -> np.ndarray:
    """How much the keyframe's appearance model changes per level of source change at each pixel, (h, w).

    What alpha should be where the keyframes show the same content (nothing moved there to tell): a
    vignette's gain, 1 for a grade's mid-tones or an additive mark, near 0 under an opaque overlay the
    screen grid took in.
    """
    up = np.clip(key.source.astype(np.int16) + int(step), 0, 255).astype(np.uint8)
    down = np.clip(key.source.astype(np.int16) - int(step), 0, 255).astype(np.uint8)
    change = (up.astype(np.float32) - down.astype(np.float32)).sum(2)
    slope = (key.appearance(up) - key.appearance(down)).sum(2) / np.maximum(change, 1.0)
    slope = np.where(change > 0, slope, 1.0)
    return np.clip(cv2.GaussianBlur(slope.astype(np.float32), (0, 0), 2.0), 0.0, 1.2)


def _screen_split(a: _Key, b: _Key, to_b: np.ndarray, to_a: np.ndarray, size: tuple[int, int]):
    """Per pixel of each keyframe: the share of its residual that stays on the screen, and the screen alpha.

    ``to_b`` maps keyframe a's pixels to b (the backward carry's state at a), ``to_a`` the other way.
    Screen hypothesis: at each screen position the edit follows the source by one factor, ``E_a - E_b =
    alpha (S_a - S_b)`` (least squares over a 3x3 window and the channels, pulled toward the appearance
    model's own local slope where nothing moved): alpha 0
    is an opaque overlay, 1 an additive mark, a gain in between a local darkening. Object hypothesis: a's
    residual reappears in b where the flow takes it (and b's in a). The share is a soft vote between the
    two misfits. Where the flow is not confident the screen hypothesis stands only if it fits by itself
    (across a scene cut nothing is carried either way), and where the residual is too small to matter the
    appearance model alone speaks.
    """
    ds = a.source.astype(np.float32) - b.source.astype(np.float32)
    de = a.edit.astype(np.float32) - b.edit.astype(np.float32)
    window = (3, 3)
    lam = 3.0 * 8.0**2  # the pull toward alpha0, as if one pixel's 8 levels of source change agreed with it
    num = cv2.boxFilter((ds * de).sum(2), -1, window, normalize=False)
    den = cv2.boxFilter((ds * ds).sum(2), -1, window, normalize=False)
    alpha0 = 0.5 * (_local_slope(a) + _local_slope(b))
    alpha = np.clip((num + lam * alpha0) / (den + lam), 0.0, 1.2)[..., None].astype(np.float32)
    # A residual worth placing: large in either keyframe at this screen position (a logo is in both).
    significant = np.clip((np.maximum(np.abs(a.residual).sum(2), np.abs(b.residual).sum(2)) - 6.0) / 18.0, 0.0, 1.0)
    screen_misfit = np.abs(alpha * ds - de).sum(2)
    pool = 0.05 * max(size)

    def share(key: _Key, other: _Key, state: np.ndarray) -> np.ndarray:
        disp, conf = _upsample_state(state, size, 0.0)
        object_misfit = np.abs(key.residual - _carry(other.residual, disp)).sum(2)
        # Soft vote, 12 levels (summed over channels) wide, on misfits pooled over a neighbourhood: inside a
        # mark that moved less than its own size both hypotheses fit, and its edges decide for the inside.
        pooled = [cv2.GaussianBlur(m.astype(np.float32), (0, 0), pool) for m in (object_misfit, screen_misfit)]
        vote = np.where(conf > 0.5, (pooled[0] - pooled[1]) / 6.0, (24.0 - screen_misfit) / 6.0)
        p = 1.0 / (1.0 + np.exp(-np.clip(vote, -30, 30)))
        # Only where there is a residual to place: elsewhere the appearance model speaks (a screen estimate,
        # linear in the source's change, would be worse for a grade on a moving shot).
        p = (p * significant).astype(np.float32)
        return p[..., None]

    return share(a, b, to_b), share(b, a, to_a), alpha


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
        config: flow, appearance and quality settings.
        progress: show a tqdm bar on stderr.
    """
    n = len(frames) if num_frames is None else num_frames  # type: ignore[arg-type]
    keys = sorted(keyframes)
    if not keys or keys[0] != 0:
        raise ValueError("the propagate engine needs an edited first frame (keyframe 0)")
    if keys[-1] >= n:
        raise ValueError(f"keyframe {keys[-1]} is past the end of a {n}-frame clip")
    if config.preset not in _PRESETS:
        raise BadInput(f"flow preset {config.preset!r} is not one of {', '.join(_PRESETS)}")
    folder = tempfile.mkdtemp(prefix="pdedit-propagate-")
    try:
        yield from _render(frames, keyframes, keys, n, folder, config, progress)
    finally:
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


def _render(frames, keyframes, keys, n, folder, config, progress) -> Iterator[np.ndarray]:
    """The segments of :func:`propagate`, with temporary files in ``folder``."""
    ahead = iter(frames)  # the look-ahead pass: flows, forward carry, keyframe models
    behind = iter(frames)  # the render pass
    bar = tqdm(total=n, desc="propagate", disable=not progress)
    longest = max([b - a for a, b in zip(keys, keys[1:])], default=0)
    flows = states = None
    estimator = None
    size = None
    count = 0

    def read(source) -> np.ndarray:
        """The next look-ahead frame; BadInput when the clip is shorter than it said."""
        try:
            return next(source)
        except StopIteration:
            raise BadInput(f"the source clip ended after {count} frames, {n} were expected") from None

    try:
        first = read(ahead)
        count = 1
        size = (first.shape[1], first.shape[0])
        estimator = FlowEstimator(_flow_size(size, config.flow_side), config.preset)
        fw, fh = estimator.size
        if longest:
            flows = _DiskFrames(folder, "flows.bin", longest, (fh, fw, 4), np.float16)
            states = _DiskFrames(folder, "backward.bin", longest + 1, (fh, fw, 3), np.float32)
        key_a = _fit_key(0, first, keyframes[0], config)
        grey_a = estimator.grey(first)
        for a, b in zip(keys, keys[1:] + [None]):
            if b is None:
                # One keyframe cannot tell screen from content: its colour table (and detail) and a carried residual.
                key_a.use(None)
                _fit_detail([key_a], config)
                yield from _tail(behind, key_a, a, n, estimator, config, size, bar)
                break
            # Look ahead over a+1..b: both flows of each pair, the forward carry, cuts; fit b.
            forward = _identity_state(fh, fw)
            cuts = []
            prev = grey_a
            for t in range(a + 1, b + 1):
                frame = read(ahead)
                count += 1
                grey = estimator.grey(frame)
                fwd, bwd = estimator.both(prev, grey)
                cut = is_cut(prev, grey, flow_confidence(fwd, bwd))
                cuts.append(cut)
                flows.put(t - 1 - a, np.dstack([fwd, bwd]))
                forward = carry_step(forward, bwd, fwd, cut)
                prev = grey
                if t == b:
                    key_b = _fit_key(b, frame, keyframes[b], config)
            _pair_models(key_a, key_b, config)
            _fit_detail([key_a, key_b], config)
            # Backward carry from b to a.
            state = _identity_state(fh, fw)
            states.put(b - a, state)
            for t in range(b - 1, a - 1, -1):
                pair = flows.get(t - a)
                state = carry_step(state, pair[..., :2], pair[..., 2:], cuts[t - a])
                states.put(t - a, state)
            share_a, share_b, alpha = _screen_split(key_a, key_b, states.get(0), forward, size)
            key_a.segment(share_a, alpha)
            key_b.segment(share_b, alpha)
            # Render a..b-1 (and b when it is the clip's last frame). The carry is sequential, the blends are
            # not: a few frames' blends run on the workers while the next carry steps go on, in order.
            last = b == n - 1
            fwd_state = _identity_state(fh, fw)
            pending = deque()
            for t in range(a, b + 1 if last else b):
                frame = next(behind)
                if t > a:
                    pair = flows.get(t - 1 - a)
                    fwd_state = carry_step(fwd_state, pair[..., 2:], pair[..., :2], cuts[t - 1 - a])
                pending.append(_workers().submit(_blend, frame, t, key_a, key_b, fwd_state, states.get(t - a), size,
                                                 config.feather))
                if len(pending) > _IN_FLIGHT:
                    yield pending.popleft().result()
                    bar.update(1)
            while pending:  # the next segment refits key_b: its frames are done first
                yield pending.popleft().result()
                bar.update(1)
            if last:
                if next(behind, None) is not None or next(ahead, None) is not None:
                    raise BadInput(f"the source clip has more than the {n} frames expected")
                break
            key_a, grey_a = key_b, prev
    finally:
        bar.close()
        for store in (flows, states):
            if store is not None:
                store.close()


def _finish(out: np.ndarray) -> np.ndarray:
    """Clip and round a float frame to uint8."""
    np.clip(out, 0.0, 255.0, out=out)
    out += 0.5  # round half up on the way to uint8 (values are non-negative now)
    return out.astype(np.uint8)


def _blend(frame, t, key_a: _Key, key_b: _Key, state_a, state_b, size, feather) -> np.ndarray:
    """One output frame between keyframes a and b.

    Per keyframe k: the screen-space estimate ``(1 - share) M_k(S_t) + share (E_k + alpha (S_t - S_k))``
    (``_Key.segment`` holds its per-segment terms), and the part of the residual that moves, carried along
    the flow. Position in the clip weighs the two keyframes, and so does what each one reaches: across a
    scene cut (or where content entered) the other keyframe's models speak, as they have seen that shot.
    """
    a, b = key_a.index, key_b.index
    if t == a:
        return key_a.edit.copy()
    if t == b:
        return key_b.edit.copy()
    pos = (t - a) / (b - a)
    disp_a, conf_a = _upsample_state(state_a, size, feather)
    disp_b, conf_b = _upsample_state(state_b, size, feather)
    w_a = (1.0 - pos) * (conf_a + _FLOOR)
    w_b = pos * (conf_b + _FLOOR)
    total = w_a + w_b
    w_a /= total
    w_b /= total
    # The appearance models (one for both keyframes when they share it: computed once).
    model_a, model_b = key_a.appearance, key_b.appearance
    detail = model_a.detail(frame) if model_a.detail is not None and model_a.detail is model_b.detail else None
    m_a = model_a(frame, detail)
    if key_b.colours is key_a.colours and model_b.screen is model_a.screen and model_b.detail is model_a.detail:
        out = m_a * _channels(w_a * key_a.keep + w_b * key_b.keep)
    else:
        out = m_a * _channels(w_a * key_a.keep) + model_b(frame, detail) * _channels(w_b * key_b.keep)
    # The screen parts: the keyframe's edit at this position, following the source's change by alpha.
    if key_a.on_screen or key_b.on_screen:
        out += frame.astype(np.float32) * _channels(w_a * key_a.follow + w_b * key_b.follow)
        out += key_a.fixed * _channels(w_a) + key_b.fixed * _channels(w_b)
    # The moving parts, where a carry reaches, by position and confidence.
    c_a, c_b = (1.0 - pos) * conf_a, pos * conf_b
    norm = np.maximum(conf_a, conf_b) / (c_a + c_b + 1e-6)
    out += _carry(key_a.moving, disp_a) * _channels(c_a * norm) + _carry(key_b.moving, disp_b) * _channels(c_b * norm)
    return _finish(out)


def _tail(behind, key: _Key, a: int, n: int, estimator: FlowEstimator, config: PropagateConfig, size, bar):
    """Frames a..n-1 after the last keyframe: the forward carry alone, with flows computed as it goes (the
    frames' appearance and carried residual on the workers, as in the segments)."""
    fh, fw = estimator.size[1], estimator.size[0]
    state = _identity_state(fh, fw)
    prev = None
    pending = deque()
    for t in range(a, n):
        frame = next(behind, None)
        if frame is None:
            raise BadInput(f"the source clip ended after {t} frames, {n} were expected")
        grey = estimator.grey(frame)
        if t > a:
            fwd, bwd = estimator.both(prev, grey)
            state = carry_step(state, bwd, fwd, is_cut(prev, grey, flow_confidence(fwd, bwd)))
        pending.append(_workers().submit(_tail_frame, frame, key, None if t == a else state, size, config.feather))
        prev = grey
        if len(pending) > _IN_FLIGHT:
            yield pending.popleft().result()
            bar.update(1)
    while pending:
        yield pending.popleft().result()
        bar.update(1)
    if next(behind, None) is not None:
        raise BadInput(f"the source clip has more than the {n} frames expected")


def _tail_frame(frame: np.ndarray, key: _Key, state: np.ndarray | None, size, feather: float) -> np.ndarray:
    """One frame after the last keyframe: its appearance plus the keyframe's residual where the carry reaches
    (the keyframe's edit itself where ``state`` is None)."""
    if state is None:
        return key.edit.copy()
    disp, conf = _upsample_state(state, size, feather)
    return _finish(key.appearance(frame) + _channels(conf) * _carry(key.residual, disp))


def per_frame(
    frames: Iterable[np.ndarray],
    edit,
    *,
    smooth: float = 0.5,
    tolerance: float = 12.0,
    config: PropagateConfig = PropagateConfig(),
    num_frames: int | None = None,
    progress: bool = False,
) -> Iterator[np.ndarray]:
    """Apply ``edit`` (uint8 frame -> uint8 frame) to every frame, with temporal smoothing along the flow.

    What a user who gives the same edit spec for both keyframes asked for: that filter on the whole clip.
    A filter that quantises or thresholds (a cartoon's bands and outlines) flips pixels between frames on
    sensor noise alone; where the previous output, warped along the source's flow, differs from this
    frame's edit by less than ``tolerance`` levels and the flow is confident, the two are mixed
    (``smooth`` of the warped one), so the flips settle while real changes (motion, new content) pass.
    ``smooth=0`` is the plain per-frame edit.
    """
    n = len(frames) if num_frames is None else num_frames  # type: ignore[arg-type]
    estimator = prev_grey = prev_out = None
    for frame in tqdm(frames, total=n, desc="per-frame edit", disable=not progress):
        out = edit(frame)
        if smooth > 0:
            if estimator is None:
                size = (frame.shape[1], frame.shape[0])
                estimator = FlowEstimator(_flow_size(size, config.flow_side), config.preset)
            grey = estimator.grey(frame)
            if prev_out is not None:
                to_prev, from_prev = estimator.both(grey, prev_grey)
                state = np.dstack([to_prev, flow_confidence(to_prev, from_prev)])
                disp, conf = _upsample_state(state, size, 0.0)
                warped = _carry(prev_out.astype(np.float32), disp)
                edited = out.astype(np.float32)
                close = (np.abs(warped - edited).max(axis=2, keepdims=True) < tolerance).astype(np.float32)
                out = _finish(edited + smooth * conf[..., None] * close * (warped - edited))
            prev_grey = grey
        prev_out = out
        yield out


# ---------------------------------------------------------------- the engine


class PropagateEngine:
    """Engine ``propagate``: no weights; edits the source clip from its edited keyframes."""

    name = "propagate"

    def __init__(self, config: PropagateConfig | None = None, per_frame=None):
        """``per_frame``: an edit (uint8 frame -> uint8 frame) to apply to every frame instead of carrying keyframes."""
        self.config = config or PropagateConfig()
        self.per_frame = per_frame

    def render(self, job, progress: bool = False) -> Iterator[np.ndarray]:
        """Yield ``job.num_frames`` edited frames of ``job.source`` at ``job.size``."""
        if job.source is None:
            raise BadInput("the propagate engine edits a video and cannot generate from nothing: give it a source clip")
        n = len(job.source)
        if job.num_frames != n:
            raise ValueError(f"job asks for {job.num_frames} frames but the source clip has {n}")
        if self.per_frame is not None:
            return per_frame(job.source, self.per_frame, num_frames=n, config=self.config, progress=progress)
        keyframes = {0: job.first}
        keyframes.update(job.keyframes or {})
        if job.last is not None:
            keyframes[n - 1] = job.last
        return propagate(job.source, keyframes, num_frames=n, config=self.config, progress=progress)
