"""Appearance models of an edit: what an edited keyframe says the edit does to colours, per screen position.

An edit ``E = edit(S)`` of a source frame ``S`` is modelled in two layers, both fitted robustly on one
keyframe pair ``(S_k, E_k)`` and both applied to any other frame at the same screen position:

1. ``ColourMap``: a global 3D colour lookup table (a grade, a hue shift, a tone curve). Nodes the keyframe
   has no colours near are pulled toward a global affine colour transform fitted on the same pair, so a
   colour no keyframe contains (a white car entering a dark shot) changes only as much as the edit's overall
   gain implies, instead of following an unconstrained extrapolation.
2. ``ScreenGrid``: a bilateral grid (Chen, Adams et al., "Bilateral Guided Upsampling", SIGGRAPH Asia 2016:
   the model behind HDRNet) of per-channel gains and offsets over screen position and source luminance,
   applied after the table. It expresses what depends on where a pixel is on the screen: vignettes,
   graduated filters, a tint toward one corner, local tone changes. Smoothness and a prior toward the
   identity keep empty cells sensible; Cauchy weights leave painted marks to the residual.
3. ``DetailMap``: for edits that redraw the picture from its local structure (a pencil drawing, outlines, a
   painterly look) what the first two leave is a function of the frame's own detail, not of its colours.
   A table over three detail features (luminance and two band-pass log-ratios, which do not change with
   exposure) maps them to that remainder, so each frame's style is re-synthesised from the frame's own
   content, as in Image Analogies (Hertzmann et al., SIGGRAPH 2001) with a smooth regression in place of
   the patch search. ``fit_detail_map`` keeps it only where, fitted on one half of the keyframes, it
   predicts the other half's remainder, and fitted on one keyframe the other's: a grade, paint or a logo
   leave nothing it can predict.

``fit_colour_map``, ``fit_screen_grid`` and ``fit_detail_map`` fit them (the propagate engine chooses
between the first two per segment); ``Appearance.__call__`` applies them to a frame. What they cannot
explain (``E_k - appearance(S_k)``: paint, overlays with sharp edges, texture) is the edit's residual,
carried by the propagate engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import cg

__all__ = ["ColourMap", "IDENTITY", "fit_colour_map", "robust_error", "ScreenGrid", "fit_screen_grid", "DetailMap",
           "detail_features", "fit_detail_map", "Appearance", "residual", "same_shot"]

_LUT_LEVELS = 128  # dense table resolution per channel: index = value >> 1
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# ---------------------------------------------------------------- 1. the global colour table


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


def _robust_gain(src: np.ndarray, dst: np.ndarray, iterations: int = 3, scale: float = 12.0) -> np.ndarray:
    """Per-channel gains ``g`` (3,) with ``dst ~ g * src`` over (n, 3) pairs, fitted with Cauchy weights.

    A gain through black is the smoothest colour change an edit can imply for colours it never showed:
    an edit that darkened the keyframe darkens a new white object in proportion, no more.
    """
    weight = np.ones(len(src))
    gain = np.ones(3)
    for _ in range(iterations):
        gain = ((weight[:, None] * src * dst).sum(0) + 1.0) / ((weight[:, None] * src * src).sum(0) + 1.0)
        err = np.linalg.norm(src * gain - dst, axis=1)
        weight = 1.0 / (1.0 + (err / scale) ** 2)
    return gain


@dataclass(frozen=True)
class ColourMap:
    """A 3D colour lookup table: ``nodes`` (K, K, K, 3) and its dense uint8 table for fast lookup."""

    nodes: np.ndarray
    table: np.ndarray  # (128**3, 3) uint8, indexed by the colour with each channel >> 1

    @classmethod
    def identity(cls) -> "ColourMap":
        """The table that leaves every colour as it is (to within the table's 2-level quantisation)."""
        level = (np.arange(_LUT_LEVELS) * 2 + 1).astype(np.uint8)
        r, g, b = np.meshgrid(level, level, level, indexing="ij")
        table = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)
        return cls(nodes=_identity_nodes(2).reshape(2, 2, 2, 3).astype(np.float32), table=table)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Map a uint8 (H, W, 3) RGB frame through the table; returns uint8 (H, W, 3)."""
        if self is IDENTITY:  # exact, and free
            return frame
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
    prior: float = 0.5,
    toward: Sequence[float] | None = None,
    robust_scale: float = 12.0,
) -> ColourMap:
    """Fit a 3D LUT taking ``source`` colours to ``edited`` colours (both uint8 (H, W, 3) RGB).

    The table is the least-squares trilinear LUT with a second-difference penalty, refitted with Cauchy
    weights so pixels changed by a local edit (a painted patch) are treated as outliers and left to the
    residual. Nodes more than two cells from every keyframe colour are pulled toward the edit's robust
    per-channel gain (``prior`` is that pull, relative to the mean data weight of a node), so colours the
    keyframe lacks change as much as the edit's overall gain implies instead of following an
    extrapolated trend; nodes near data follow the data alone, so a rare colour's edit is kept.
    ``toward``: one colour those far nodes are pulled to instead (a table whose inputs are not colours).
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
    if toward is None:
        target = _identity_nodes(grid) * _robust_gain(src.astype(np.float64), dst, scale=robust_scale)
    else:
        target = np.tile(np.asarray(toward, np.float64), (k3, 1))
    # Nodes more than two cells from every keyframe colour are pulled toward the gain; the others follow the
    # data alone, however few pixels have that colour (paint on a small object is a rare colour).
    seen = np.asarray(a.sum(axis=0)).ravel().reshape(grid, grid, grid) > 0
    pull = prior * (n / k3) * ~ndimage.binary_dilation(seen, np.ones((5, 5, 5), bool)).ravel()
    reg = smooth * (n / k3) * (d.T @ d) + sparse.diags(pull)
    weight = np.ones(n)
    nodes = target.copy()
    for _ in range(iterations):
        atw = a.T.multiply(weight).tocsr()
        lhs = (atw @ a + reg).tocsr()
        rhs = atw @ dst + pull[:, None] * target
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


IDENTITY = ColourMap.identity()  # the colour table of an edit tied to the screen alone


def robust_error(predicted: np.ndarray, target: np.ndarray, keep: float = 0.8) -> float:
    """Mean absolute error (levels, over channels) of the ``keep`` best-predicted pixels: local paint is ignored."""
    err = np.abs(predicted.astype(np.float32) - target.astype(np.float32)).mean(axis=2).ravel()
    cut = int(len(err) * keep)
    return float(np.partition(err, cut - 1)[:cut].mean())


# ---------------------------------------------------------------- 2. the screen-space grid


def _tent(u: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower node index and weight of the upper node for coordinates ``u`` in [0, nodes - 1]."""
    i0 = np.clip(np.floor(u).astype(np.int64), 0, nodes - 2)
    return i0, (u - i0).astype(np.float64)


def _first_differences(shape: tuple[int, ...]) -> sparse.csr_matrix:
    """First differences along every axis of a lattice of ``shape`` (a membrane smoothness term)."""
    blocks = []
    for axis, size in enumerate(shape):
        if size < 2:
            continue
        d = sparse.diags([-np.ones(size - 1), np.ones(size - 1)], [0, 1], shape=(size - 1, size))
        parts = [sparse.identity(s) for s in shape]
        parts[axis] = d
        m = parts[0]
        for p in parts[1:]:
            m = sparse.kron(m, p)
        blocks.append(m)
    return sparse.vstack(blocks).tocsr()


@dataclass(frozen=True)
class ScreenGrid:
    """Per-channel gain and offset on a (bins, gy, gx) grid over source luminance and screen position."""

    gain: np.ndarray  # (bins, gy, gx, 3)
    offset: np.ndarray  # (bins, gy, gx, 3)

    def maps(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The grid sliced at every screen position of a (w, h) frame: (bins, h, w, 3) gains and offsets.

        Node ``i`` of ``n`` sits at pixel ``i * (w - 1) / (n - 1)``; cv2's resize with ``INTER_LINEAR``
        on a grid padded like that would shift by half a cell, so the interpolation is written out.
        """
        w, h = size
        bins, gy, gx, _ = self.gain.shape
        x0, fx = _tent(np.arange(w) * ((gx - 1) / max(w - 1, 1)), gx)
        y0, fy = _tent(np.arange(h) * ((gy - 1) / max(h - 1, 1)), gy)
        fx, fy = fx.astype(np.float32)[None, :, None], fy.astype(np.float32)[:, None, None]

        def up(grid: np.ndarray) -> np.ndarray:
            rows = grid[:, y0] * (1 - fy) + grid[:, y0 + 1] * fy  # (bins, h, gx, 3)
            return rows[:, :, x0] * (1 - fx) + rows[:, :, x0 + 1] * fx

        return up(self.gain.astype(np.float32)), up(self.offset.astype(np.float32))


def _luma_coordinate(frame: np.ndarray, bins: int) -> np.ndarray:
    """Source luminance of a uint8 frame scaled to grid coordinates [0, bins - 1], float32 (H, W)."""
    return (frame.astype(np.float32) @ _LUMA) * ((bins - 1) / 255.0)


def fit_screen_grid(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    cells: int = 16,
    bins: int = 1,
    stride: int = 3,
    smooth: float = 0.001,
    prior: float = 0.0005,
    offset_prior: float = 0.01,
    iterations: int = 4,
    robust_scale: float = 10.0,
) -> tuple[ScreenGrid, list[float]]:
    """Fit per-channel gains and offsets over (luminance, y, x) taking ``mapped`` to ``edited``.

    ``pairs`` holds one ``(source, mapped, edited)`` triple per keyframe the grid must explain (all of one
    size): ``source`` (uint8) gives each pixel's luminance coordinate, ``mapped`` (the colour table's
    output) is what the gains multiply. Two keyframes of one shot with the same screen edit pin down what
    one cannot: a cell that saw a narrow range of colours in one keyframe (a flat road) cannot tell a gain
    from an offset, but the car that stands there in the other can. Offsets are penalised more than gains
    (``offset_prior``) for the cells neither resolves: a gain is what extrapolates sensibly to colours
    never seen. ``cells`` is the number of cells along the long side; the short side gets as many as keep
    the cells square. Every ``stride``-th pixel is a sample. The Cauchy weights' scale shrinks from 4x
    ``robust_scale`` to it over the iterations (graduated non-convexity), so a painted patch the first,
    unweighted fit half-absorbed is still rejected. Returns the grid and, per pair, the RMS misfit (in
    levels) over its samples.
    """
    h, w = pairs[0][0].shape[:2]
    gx = cells + 1 if w >= h else max(2, round(cells * w / h)) + 1
    gy = cells + 1 if h > w else max(2, round(cells * h / w)) + 1
    ys, xs = np.mgrid[0:h:stride, 0:w:stride]
    ys, xs = ys.ravel(), xs.ravel()
    lum = np.concatenate([_luma_coordinate(p[0][ys, xs][None], bins)[0] for p in pairs])
    # In units of the full range, so gains and offsets (and their penalties) are on one scale.
    m = np.concatenate([p[1][ys, xs] for p in pairs]).astype(np.float64) / 255.0
    e = np.concatenate([p[2][ys, xs] for p in pairs]).astype(np.float64) / 255.0
    xs, ys = np.tile(xs, len(pairs)), np.tile(ys, len(pairs))
    x0, fx = _tent(xs * ((gx - 1) / max(w - 1, 1)), gx)
    y0, fy = _tent(ys * ((gy - 1) / max(h - 1, 1)), gy)
    l0, fl = _tent(lum.astype(np.float64), bins) if bins > 1 else (np.zeros(len(xs), np.int64), np.zeros(len(xs)))
    n, k = len(xs), bins * gy * gx
    cols, vals = [], []
    for dl in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                li = np.minimum(l0 + dl, bins - 1)
                cols.append((li * gy + y0 + dy) * gx + x0 + dx)
                vals.append((fl if dl else 1 - fl) * (fy if dy else 1 - fy) * (fx if dx else 1 - fx))
    rows = np.repeat(np.arange(n), 8)
    tent = sparse.csr_matrix((np.stack(vals, 1).ravel(), (rows, np.stack(cols, 1).ravel())), shape=(n, k))
    diff = _first_differences((bins, gy, gx))
    scale = n / k
    smoothness = smooth * scale * (diff.T @ diff)
    reg_gain = smoothness + prior * scale * sparse.identity(k)
    reg_offset = smoothness + offset_prior * scale * sparse.identity(k)
    gain = np.ones((k, 3))
    offset = np.zeros((k, 3))
    weight = np.ones(n)
    for it in range(iterations):
        for c in range(3):
            # Unknowns [gain nodes, offset nodes]; prediction = (tent @ gain) * m + tent @ offset.
            a = sparse.hstack([tent.multiply(m[:, c:c + 1]), tent]).tocsr()
            aw = a.T.multiply(weight).tocsr()
            lhs = (aw @ a + sparse.block_diag([reg_gain, reg_offset])).toarray()
            rhs = aw @ e[:, c] + np.concatenate([prior * scale * np.ones(k), np.zeros(k)])
            sol = np.linalg.solve(lhs, rhs)
            gain[:, c], offset[:, c] = sol[:k], sol[k:]
        pred = (tent @ gain) * m + tent @ offset
        err = np.linalg.norm(pred - e, axis=1)
        cauchy = robust_scale * 4.0 ** (1.0 - it / max(iterations - 1, 1))
        weight = 1.0 / (1.0 + (err * 255.0 / cauchy) ** 2)
    shape = (bins, gy, gx, 3)
    grid = ScreenGrid(gain=gain.reshape(shape).astype(np.float32),
                      offset=(255.0 * offset).reshape(shape).astype(np.float32))
    per_pair = np.split(np.linalg.norm(pred - e, axis=1) * 255.0, len(pairs))
    return grid, [float(np.sqrt(np.mean(err**2))) for err in per_pair]


# ---------------------------------------------------------------- 3. detail: the style of local structure

_DETAIL_SCALES = (2.0, 8.0)  # the two blur widths in pixels (filters that draw, outline or paint work in pixels)
_DETAIL_SLOPE = 64.0  # feature levels per octave of local contrast
_DETAIL_ZERO = 128.0  # the remainder is stored around this level in the table's uint8 targets


def detail_features(frame: np.ndarray) -> np.ndarray:
    """Per pixel: luminance, and the log-ratios luminance / fine blur and fine / coarse blur, as uint8 (H, W, 3).

    The ratios describe local structure (edges, texture, shading against its surround) the same way at any
    exposure.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32) + 1.0
    fine = cv2.GaussianBlur(grey, (0, 0), _DETAIL_SCALES[0], borderType=cv2.BORDER_REFLECT)
    coarse = cv2.GaussianBlur(grey, (0, 0), _DETAIL_SCALES[1], borderType=cv2.BORDER_REFLECT)
    k = float(_DETAIL_SLOPE / np.log(2.0))
    out = cv2.merge([grey - 0.5, cv2.log(grey / fine) * k + (_DETAIL_ZERO + 0.5),
                     cv2.log(fine / coarse) * k + (_DETAIL_ZERO + 0.5)])
    return np.clip(out, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class DetailMap:
    """What an edit adds as a function of local structure: a table from ``detail_features`` to the remainder."""

    table: ColourMap

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """The predicted remainder of a uint8 frame, float32 (H, W, 3)."""
        return self.lookup(detail_features(frame))

    def lookup(self, features: np.ndarray) -> np.ndarray:
        """The predicted remainder of pixels whose ``detail_features`` are given, float32."""
        out = self.table(features).astype(np.float32)
        out -= _DETAIL_ZERO
        return out


def _detail_table(pairs: Sequence[tuple[np.ndarray, np.ndarray]], grid: int) -> ColourMap:
    """The table from (features, remainder) pairs."""
    features = np.hstack([f for f, _ in pairs])
    targets = np.hstack([np.clip(rest + _DETAIL_ZERO + 0.5, 0, 255).astype(np.uint8) for _, rest in pairs])
    # Structure no keyframe shows (a car's edges entering a bare parking lot) gets no remainder.
    return fit_colour_map(features, targets, grid=grid, toward=(_DETAIL_ZERO,) * 3)


def fit_detail_map(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], *, grid: int = 17, accept: float = 0.15
) -> DetailMap | None:
    """Fit a ``DetailMap`` on ``(source, remainder)`` pairs (uint8 frame, float32 (H, W, 3)); None when it
    does not generalise.

    Two tests, each a pair of folds: fitted on the left halves of all pairs and scored on the right halves
    (and the other way round), and, with two pairs or more, fitted leaving one pair out and scored on it.
    A remainder that follows local structure is predicted on content the fit has not seen; one tied to
    screen position or to particular objects is not. Both tests are needed: two keyframes of a static shot
    predict each other whatever their remainder, and a smooth remainder a screen grid left over a bare
    scene is predicted from one half to the other. It is kept, refitted on everything, when in each test
    it predicts at least ``accept`` of a held-out part's energy and, on average over the folds, more than
    nothing.
    """
    data = [(detail_features(source), rest) for source, rest in pairs]
    half = data[0][0].shape[1] // 2
    left = [(f[:, :half], r[:, :half]) for f, r in data]
    right = [(f[:, half:], r[:, half:]) for f, r in data]
    tests = [[(left, right), (right, left)]]
    if len(data) > 1:
        tests.append([([q for j, q in enumerate(data) if j != i], [p]) for i, p in enumerate(data)])
    for folds in tests:
        scores = []
        for train, test in folds:
            features, rest = np.hstack([f for f, _ in test]), np.hstack([r for _, r in test])
            energy = float(np.mean(rest**2))
            if energy < 1.0:  # nothing left to explain (under a level)
                return None
            predicted = DetailMap(_detail_table(train, grid)).lookup(features)
            scores.append(1.0 - float(np.mean((rest - predicted) ** 2)) / energy)
        if max(scores) < accept or np.mean(scores) <= 0.0:
            return None
    return DetailMap(_detail_table(data, grid))


# ---------------------------------------------------------------- 4. all three, applied to frames


class Appearance:
    """A keyframe's appearance model: colour table, then the screen grid, sliced for one frame size, then the detail."""

    def __init__(self, colours: ColourMap, screen: ScreenGrid | None, size: tuple[int, int],
                 detail: DetailMap | None = None):
        self.colours = colours
        self.screen = screen
        self.detail = detail
        if screen is not None:
            self._gain, self._offset = screen.maps(size)
            self._bins = screen.gain.shape[0]

    def __call__(self, frame: np.ndarray, detail: np.ndarray | None = None) -> np.ndarray:
        """The modelled edit of a uint8 (H, W, 3) frame, float32 (H, W, 3) in [0, 255] (unclipped).

        ``detail``: this frame's ``self.detail(frame)`` when the caller has it already.
        """
        mapped = self.colours(frame).astype(np.float32)
        if self.screen is not None:
            if self._bins == 1:
                mapped *= self._gain[0]  # in place: this runs on every frame
                mapped += self._offset[0]
            else:
                lum = _luma_coordinate(frame, self._bins)
                out = np.zeros_like(mapped)
                for b in range(self._bins):
                    weight = np.maximum(0.0, 1.0 - np.abs(lum - b))[..., None]
                    out += weight * (mapped * self._gain[b] + self._offset[b])
                mapped = out
        if self.detail is not None:
            mapped += self.detail(frame) if detail is None else detail
        return mapped


def residual(edited: np.ndarray, modelled: np.ndarray) -> np.ndarray:
    """What the appearance model leaves of an edit, float32 (H, W, 3)."""
    return edited.astype(np.float32) - modelled


def same_shot(source: np.ndarray, edited: np.ndarray) -> float:
    """How well an edited keyframe's detail lines up with its source frame's, in [-1, 1].

    The correlation of the two images' high-passed luminance (the grey image minus its blur, at a
    320-pixel-wide scale), or of their gradient magnitudes where that is higher (stylised edits redraw
    the detail as outlines). An edit of the frame (a grade, paint, a vignette, a cartoon or pencil version)
    keeps the frame's detail where it was; another photo or another shot does not.
    """

    def detail(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
        width = 320
        grey = cv2.resize(grey, (width, max(16, round(width * grey.shape[0] / grey.shape[1]))),
                          interpolation=cv2.INTER_AREA)
        high = grey - cv2.GaussianBlur(grey, (0, 0), 3.0)
        smooth = cv2.GaussianBlur(grey, (0, 0), 1.0)
        edges = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
        return high.ravel(), edges.ravel()

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(), b - b.mean()
        return float((a @ b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-6))

    (ha, ea), (hb, eb) = detail(source), detail(edited)
    return max(corr(ha, hb), corr(ea, eb))
