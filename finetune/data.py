"""Training data: videos (or images) with captions, and a synthetic "moving shapes" set.

Every dataset returns, per index, a dict ``{"frames": uint8 (F, H, W, 3), "caption": str}`` (F = 1
for images), the type that crosses module boundaries in pdedit. The PixelDance recipe
(`finetune.recipe`) turns these into instructions and tensors. Random choices (clip start, crop) take a
``numpy.random.Generator`` so a training run can replay exactly the same samples after a resume.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from torch.utils.data import Dataset, Sampler

from finetune.recipe import Recipe, draw_sample

from pdedit.errors import BadInput
from pdedit.video import VIDEO_SUFFIXES

if TYPE_CHECKING:
    from finetune.config import Config

logger = logging.getLogger(__name__)

__all__ = [
    "ManifestEntry",
    "read_manifest",
    "random_resized_crop",
    "VideoFolder",
    "ImageFolder",
    "MovingShapes",
    "SkipSample",
    "shape_centroid",
    "build_dataset",
    "TrainingSamples",
    "PositionSampler",
    "uses_images",
    "make_loader",
    "video_batches",
]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class SkipSample(Exception):
    """A sample that cannot be used (corrupt or too short); the loader skips it and counts it."""


# ---------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    """One line of a manifest: a file inside the data folder and its caption."""

    path: Path
    caption: str


def _inside(root: Path, rel: str, manifest: Path, line: int) -> Path:
    """Resolve ``rel`` under ``root``; BadInput when it points outside (``..``, absolute, symlink)."""
    resolved = (root / rel).resolve()
    if not resolved.is_relative_to(root):
        raise BadInput(
            f"{manifest} line {line}: path {rel!r} points outside the data folder {root}; "
            "manifest paths must be relative to the data folder and stay inside it"
        )
    return resolved


def _row_path(row: dict[str, Any], ext: str) -> str | None:
    """The file of a manifest row: ``path``/``file``/``video``/``image``, or WebVid's ``[page_dir/]videoid``."""
    for key in ("path", "file", "video", "image", "filename"):
        if row.get(key):
            return str(row[key])
    if row.get("videoid"):
        stem = str(row["videoid"]) + ext
        return f"{row['page_dir']}/{stem}" if row.get("page_dir") else stem
    return None


def _row_caption(row: dict[str, Any]) -> str:
    """The caption of a manifest row: ``caption``/``text``/``prompt``, or WebVid's ``name``."""
    for key in ("caption", "text", "prompt", "name"):
        if row.get(key) is not None:
            return str(row[key]).strip()
    return ""


def read_manifest(root: str | Path, manifest: str | Path | None = None, *, kind: str = "video") -> list[ManifestEntry]:
    """Read a CSV or JSONL manifest of (path, caption) under ``root``; without one, list the folder.

    CSV columns: ``path,caption`` (or ``file``/``video``/``image`` and ``text``/``prompt``); WebVid's
    ``videoid,name`` (with optional ``page_dir``) is read as ``[page_dir/]videoid.mp4``. JSONL: one object a
    line with the same keys. Paths are relative to ``root`` and may not leave it (BadInput names the line).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise BadInput(f"data folder {root} does not exist: pass data.root=FOLDER")
    exts = VIDEO_SUFFIXES if kind == "video" else IMAGE_EXTS
    if manifest is None:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file())
        entries = []
        for p in files:
            side = p.with_suffix(".txt")  # a caption beside the file, as many image sets ship
            caption = side.read_text(encoding="utf-8").strip() if side.is_file() else ""
            entries.append(ManifestEntry(p.resolve(), caption))
        if not entries:
            raise BadInput(f"no {kind} files ({', '.join(exts)}) found in {root}: add files or pass a manifest")
        return entries

    manifest = Path(manifest)
    if not manifest.is_absolute() and not manifest.exists():
        manifest = root / manifest
    if not manifest.is_file():
        raise BadInput(f"manifest {manifest} not found: pass data.manifest=FILE (CSV or JSONL)")
    rows: list[tuple[int, dict[str, Any]]] = []
    if manifest.suffix.lower() in (".jsonl", ".json"):
        for n, text in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise BadInput(f"{manifest} line {n} is not JSON ({err.msg}): write one object a line") from None
            if not isinstance(row, dict):
                raise BadInput(f"{manifest} line {n} is not a JSON object: write {{\"path\": ..., \"caption\": ...}}")
            rows.append((n, row))
    else:
        with manifest.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [(n, row) for n, row in enumerate(reader, start=2)]  # line 1 is the header
    entries = []
    default_ext = ".mp4" if kind == "video" else ".jpg"
    for n, row in rows:
        rel = _row_path(row, default_ext)
        if rel is None:
            raise BadInput(
                f"{manifest} line {n} names no file: use columns path,caption (or WebVid's videoid,name)"
            )
        entries.append(ManifestEntry(_inside(root, rel, manifest, n), _row_caption(row)))
    if not entries:
        raise BadInput(f"manifest {manifest} lists no files")
    return entries


# ---------------------------------------------------------------------------------------------
# Crops
# ---------------------------------------------------------------------------------------------


def random_resized_crop(
    frames: np.ndarray, size: tuple[int, int], rng: np.random.Generator, scale: tuple[float, float] = (0.8, 1.0)
) -> np.ndarray:
    """Crop one random window (same for all frames) covering ``scale`` of the largest aspect-matched crop, resize.

    ``frames`` is (F, H, W, 3) uint8; the result is (F, size[1], size[0], 3).
    """
    w_out, h_out = size
    _, h, w, _ = frames.shape
    aspect = w_out / h_out
    # The largest crop with the target aspect, then shrunk by a random factor (scale jitter).
    cw, ch = (w, w / aspect) if w / h < aspect else (h * aspect, h)
    s = math.sqrt(rng.uniform(*scale))
    cw, ch = max(1, int(round(cw * s))), max(1, int(round(ch * s)))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    interp = cv2.INTER_AREA if cw >= w_out else cv2.INTER_LINEAR
    out = [cv2.resize(f[y0 : y0 + ch, x0 : x0 + cw], (w_out, h_out), interpolation=interp) for f in frames]
    return np.stack(out)


# ---------------------------------------------------------------------------------------------
# Real videos and images
# ---------------------------------------------------------------------------------------------


@dataclass
class VideoFolder:
    """Clips of ``num_frames`` frames from a folder of videos, at ``fps`` or every ``stride`` source frames.

    Frame sampling is ``pdedit.video.plan_window`` (the one definition); corrupt or too-short videos raise
    ``SkipSample`` and are counted in ``skipped`` (path -> reason), never crash the run.
    """

    root: str | Path
    manifest: str | Path | None = None
    num_frames: int = 16
    size: tuple[int, int] = (256, 256)
    fps: float | None = None
    stride: int | None = None
    crop_scale: tuple[float, float] = (0.8, 1.0)
    seed: int = 0
    skipped: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.fps is not None and self.stride is not None:
            raise BadInput("give data.fps or data.stride, not both")
        if self.num_frames < 2:
            raise BadInput(f"data.num_frames must be >= 2 for video clips, got {self.num_frames}")
        self.entries = read_manifest(self.root, self.manifest, kind="video")

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """Decode a random clip of entry ``index``; SkipSample (and counted) when the video cannot give one."""
        from pdedit.video import Clip, plan_window, probe

        entry = self.entries[index]
        try:
            info = probe(entry.path)
            src_fps = info.fps  # probe refuses a video without a frame rate
            if self.stride is not None:
                rate = src_fps / self.stride
            elif self.fps is not None:
                rate = self.fps
            else:
                rate = src_fps
            length = self.num_frames / rate  # seconds the clip spans
            if info.duration < length:
                raise SkipSample(f"{info.duration:.2f} s is shorter than a {length:.2f} s clip")
            start = float(rng.uniform(0.0, info.duration - length))
            window = plan_window(info, start=start, num_frames=self.num_frames, fps=rate)
            frames = np.stack(Clip(info, window, (info.width, info.height)).frames())  # (F, H, W, 3), source size
        except SkipSample as err:
            self._skip(entry.path, str(err))
            raise
        except Exception as err:  # noqa: BLE001 - any decoder failure of one file must not stop training
            self._skip(entry.path, f"{type(err).__name__}: {err}")
            raise SkipSample(str(err)) from err
        frames = random_resized_crop(frames, self.size, rng, self.crop_scale)
        return {"frames": frames, "caption": entry.caption}

    def _skip(self, path: Path, reason: str) -> None:
        """Record a skipped video once and log it."""
        if str(path) not in self.skipped:
            logger.warning("skipping %s: %s", path, reason)
        self.skipped[str(path)] = reason

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.load(index, np.random.default_rng([self.seed, index]))


@dataclass
class ImageFolder:
    """Images with captions for joint image/video training; each item has F = 1 frame."""

    root: str | Path
    manifest: str | Path | None = None
    size: tuple[int, int] = (256, 256)
    crop_scale: tuple[float, float] = (0.8, 1.0)
    seed: int = 0
    skipped: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.entries = read_manifest(self.root, self.manifest, kind="image")

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """Read image ``index`` as a one-frame clip, randomly cropped to ``size``."""
        entry = self.entries[index]
        bgr = cv2.imread(str(entry.path), cv2.IMREAD_COLOR)
        if bgr is None:
            if str(entry.path) not in self.skipped:
                logger.warning("skipping unreadable image %s", entry.path)
            self.skipped[str(entry.path)] = "unreadable image"
            raise SkipSample(f"unreadable image {entry.path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[None]  # (1, H, W, 3)
        return {"frames": random_resized_crop(rgb, self.size, rng, self.crop_scale), "caption": entry.caption}

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.load(index, np.random.default_rng([self.seed, index]))


# ---------------------------------------------------------------------------------------------
# Moving shapes (synthetic, deterministic)
# ---------------------------------------------------------------------------------------------

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 210, 60),
    "blue": (50, 90, 240),
    "yellow": (235, 220, 40),
    "magenta": (220, 50, 220),
    "cyan": (40, 220, 230),
    "white": (240, 240, 240),
}
KINDS = ("square", "circle", "triangle")
SUPERSAMPLE = 8  # shapes are drawn 8x larger and area-downsampled, so positions are sub-pixel


def _direction(vx: float, vy: float) -> str:
    """A word for a velocity (image y grows downwards)."""
    horiz = "right" if vx > 0 else "left"
    vert = "down" if vy > 0 else "up"
    if abs(vx) > 2 * abs(vy):
        return horiz
    if abs(vy) > 2 * abs(vx):
        return vert
    return f"{vert} and {horiz}"


def _bounce(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect positions into [lo, hi] (a ball bouncing between two walls)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(p, lo)
    q = np.mod(p - lo, 2 * span)
    return lo + np.where(q > span, 2 * span - q, q)


@dataclass
class MovingShapes:
    """Synthetic clips of coloured shapes moving in straight lines or bouncing, with captions.

    Item ``i`` depends only on ``(seed, i)``, so held-out sets are just other seeds. Each item also
    carries ``centers`` (F, n_shapes, 2) in pixels, the ground truth for adherence measurements.
    """

    length: int = 10_000
    num_frames: int = 8
    size: tuple[int, int] = (8, 8)
    num_shapes: int = 1
    shape_size: tuple[float, float] = (0.25, 0.4)  # side as a fraction of the shorter image side
    bounce_prob: float = 0.3
    kinds: tuple[str, ...] = KINDS
    colors: tuple[str, ...] = tuple(COLORS)
    background: tuple[int, int, int] = (0, 0, 0)
    seed: int = 0
    skipped: dict[str, str] = field(default_factory=dict, init=False)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.load(index, None)

    def load(self, index: int, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """Render clip ``index``; ``rng`` is ignored (the clip is a function of seed and index)."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        g = np.random.default_rng([self.seed, index, 7])
        w, h = self.size
        f = self.num_frames
        t = np.arange(f, dtype=np.float64)
        shapes, centers, words = [], [], []
        for _ in range(self.num_shapes):
            kind = str(g.choice(self.kinds))
            color = str(g.choice(self.colors))
            side = g.uniform(*self.shape_size) * min(w, h)
            r = side / 2
            bounce = bool(g.random() < self.bounce_prob)
            if bounce:
                p0 = g.uniform([r, r], [w - r, h - r])
                speed = g.uniform(0.5, 1.0) * min(w, h) / max(f - 1, 1) * 2.0
            else:
                # Straight line from one random inside point to another, so it stays in view.
                p0 = g.uniform([r, r], [w - r, h - r])
                p1 = g.uniform([r, r], [w - r, h - r])
                speed = float(np.linalg.norm(p1 - p0)) / max(f - 1, 1)
            angle = g.uniform(0, 2 * np.pi)
            if not bounce:
                angle = math.atan2(p1[1] - p0[1], p1[0] - p0[0])
            v = speed * np.array([math.cos(angle), math.sin(angle)])
            xs = _bounce(p0[0] + v[0] * t, r, w - r) if bounce else p0[0] + v[0] * t
            ys = _bounce(p0[1] + v[1] * t, r, h - r) if bounce else p0[1] + v[1] * t
            traj = np.stack([xs, ys], axis=1)  # (F, 2)
            shapes.append((kind, COLORS[color], side))
            centers.append(traj)
            motion = "bouncing around" if bounce else f"moving {_direction(*v)}"
            words.append(f"a {color} {kind} {motion}")
        centers_arr = np.stack(centers, axis=1)  # (F, n, 2)
        frames = np.stack([self._render(shapes, centers_arr[i]) for i in range(f)])
        return {"frames": frames, "caption": " and ".join(words), "centers": centers_arr.astype(np.float32)}

    def _render(self, shapes: list[tuple[str, tuple[int, int, int], float]], centers: np.ndarray) -> np.ndarray:
        """Draw shapes at sub-pixel centres on the background; (H, W, 3) uint8."""
        w, h = self.size
        s = SUPERSAMPLE
        canvas = np.empty((h * s, w * s, 3), np.uint8)
        canvas[:] = self.background
        for (kind, rgb, side), (cx, cy) in zip(shapes, centers):
            cx, cy, r = cx * s, cy * s, side * s / 2
            if kind == "square":
                cv2.rectangle(canvas, (int(round(cx - r)), int(round(cy - r))),
                              (int(round(cx + r)) - 1, int(round(cy + r)) - 1), rgb, thickness=-1)
            elif kind == "circle":
                cv2.circle(canvas, (int(round(cx)), int(round(cy))), int(round(r)), rgb, thickness=-1)
            else:
                pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
                cv2.fillPoly(canvas, [pts], rgb)
        return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)


def shape_centroid(frame: np.ndarray, background: tuple[int, int, int] | None = (0, 0, 0)) -> np.ndarray:
    """Centre of mass (x, y) in pixels of what differs from ``background`` in an (H, W, 3) uint8 frame.

    With ``background=None`` the frame's border median is the background (works for black-on-white
    sketches too). A frame equal to its background gives the image centre.
    """
    img = frame.astype(np.float32)
    if background is None:
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        bg = np.median(border, axis=0)
    else:
        bg = np.asarray(background, np.float32)
    weight = np.abs(img - bg).max(axis=-1)  # (H, W)
    total = float(weight.sum())
    h, w = weight.shape
    if total <= 1e-6:
        return np.array([w / 2, h / 2], np.float32)
    ys, xs = np.mgrid[0:h, 0:w] + 0.5  # pixel i covers [i, i+1): its centre is i + 0.5, as in MovingShapes
    return np.array([(weight * xs).sum() / total, (weight * ys).sum() / total], np.float32)


# ---------------------------------------------------------------------------------------------
# The training stream: a resumable, rank-sharded sequence of recipe samples from any dataset above
# ---------------------------------------------------------------------------------------------
#
# A data source plugs in by having ``__len__`` and ``load(index, rng) -> {"frames", "caption"}`` (raising
# SkipSample for an unusable item) and being returned by ``build_dataset`` for its ``data.kind``.
# Cached latents (``data.shards``, made by ``python -m finetune.prepare``) hold no frames to draw the recipe
# from and are read shard by shard, so they replace the whole stream instead: ``video_batches`` chooses.


def build_dataset(config: Config, held_out: bool = False):
    """The dataset named by ``config.data``; ``held_out`` gives validation clips (another shapes seed)."""
    d = config.data
    size = (int(d.size[0]), int(d.size[1]))
    if d.kind == "shapes":
        options = dict(d.shapes)
        seed = int(options.pop("seed", config.train.seed)) + (1_000_003 if held_out else 0)
        if "kinds" in options:
            options["kinds"] = tuple(options["kinds"])
        if "shape_size" in options:
            options["shape_size"] = tuple(options["shape_size"])
        return MovingShapes(num_frames=d.num_frames, size=size, seed=seed, **options)
    if d.kind == "videos":
        if d.root is None:
            raise BadInput("data.kind=videos needs data.root=FOLDER (and optionally data.manifest=FILE)")
        return VideoFolder(d.root, d.manifest, num_frames=d.num_frames, size=size, fps=d.fps, stride=d.stride,
                           crop_scale=tuple(d.crop_scale), seed=config.train.seed)
    raise BadInput(f"data.kind {d.kind!r} must be shapes or videos")


class TrainingSamples(Dataset):
    """Position ``k`` of the run -> one recipe sample; a pure function of (seed, k), so resumes replay.

    Positions walk through a fresh permutation of the dataset each epoch. A sample the dataset cannot
    give (corrupt, too short) is replaced by the next index, and counted in ``dataset.skipped``.
    """

    def __init__(self, dataset: Any, recipe: Recipe, seed: int):
        self.dataset, self.recipe, self.seed = dataset, recipe, seed
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return 2**62  # an endless stream; the sampler decides which positions are read

    def _index(self, position: int) -> int:
        """The dataset index at ``position``: the epoch's permutation, cached."""
        n = len(self.dataset)
        epoch = position // n
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(n))
        return int(self._perm[1][position % n])

    def __getitem__(self, position: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, position, 1])
        index = self._index(position)
        n = len(self.dataset)
        for attempt in range(n):
            try:
                item = self.dataset.load((index + attempt) % n, rng)
                break
            except SkipSample:
                continue
        else:
            raise BadInput(f"no usable sample in the dataset ({len(self.dataset.skipped)} skipped): check the data")
        return draw_sample(item, self.recipe, rng)


class PositionSampler(Sampler):
    """Yields this rank's sample positions from micro-batch ``start`` on: batch m of rank r is
    positions ``[(m * world + r) * B, (m * world + r + 1) * B)``."""

    def __init__(self, batch_size: int, rank: int, world: int, start: int = 0):
        self.batch_size, self.rank, self.world, self.start = batch_size, rank, world, start

    def __iter__(self) -> Iterator[int]:
        m = self.start
        while True:
            base = (m * self.world + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)
            m += 1

    def __len__(self) -> int:
        return 2**62


def uses_images(seed: int, micro: int, image_ratio: float) -> bool:
    """Whether micro-batch ``micro`` is an image batch (joint training): a function of (seed, micro), so a
    resumed run replays the same choice, and the loaders' positions can be recounted from it."""
    return image_ratio > 0 and np.random.default_rng([seed, micro, 2]).random() < image_ratio


def make_loader(samples: TrainingSamples, batch_size: int, rank: int, world: int, start: int, workers: int) -> Iterator:
    """An endless iterator of collated batches for this rank, from micro-batch ``start``."""
    from torch.utils.data import DataLoader

    from finetune.recipe import collate

    loader = DataLoader(samples, batch_size=batch_size, sampler=PositionSampler(batch_size, rank, world, start),
                        collate_fn=collate, num_workers=workers, persistent_workers=workers > 0)
    return iter(loader)


def video_batches(config: Config, recipe: Recipe, pipe, rank: int, world: int, start: int) -> tuple[Any, Iterator]:
    """This rank's endless stream of video micro-batches from its micro-batch ``start``, and the dataset behind it
    (the loop logs its ``skipped``): the one choice of source for training.

    With ``data.shards`` the batches are cached latents and text embeddings (``finetune.shards``, checked against
    ``pipe``'s VAE); otherwise recipe samples of ``build_dataset(config)``.
    """
    if config.data.shards:
        from finetune.shards import shard_source

        return shard_source(config, recipe, pipe, rank, world, start)
    dataset = build_dataset(config)
    t = config.train
    return dataset, make_loader(TrainingSamples(dataset, recipe, t.seed), t.batch_size, rank, world, start,
                                config.data.num_workers)
