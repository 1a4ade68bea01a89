"""How good is an edited clip? Keyframe fidelity, stability along the source's motion, motion kept.

The figures, for an edited clip O of N frames and the source window S it was made from (read at O's
frame count and size, the way `pdedit edit` sampled it):

- **keyframe PSNR / SSIM**: O's first and last frame against the edited keyframes (the ``--first-edit``
  and ``--last-edit`` images or specs, or the oracle's keyframes). PixelDance's engines are asked to
  hit them; 100 dB stands for a perfect match.
- **warping error** (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018): the mean
  squared RGB difference (values in [0, 1], summed over channels) between O[t+1] and O[t] warped along
  the *source's* flow from t+1 to t, over the pixels the forward/backward test calls non-occluded;
  averaged over the pairs. The source's own warping error, computed the same way, is the floor that
  flow errors and lighting changes put under any clip: ``warp_error_ratio`` 1.0 = as steady as the
  source, 2.0 = twice the flicker.
- **flow EPE**: end-point error (pixels of O) between the source's flow and O's own flow, over the same
  pixels: 0 when the edit kept the motion.
- **oracle PSNR** (with an ``auto:`` spec): PSNR of every frame of O against that edit applied to the
  matching source frame, the ceiling a keyframe-propagation engine is chasing.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pdedit import video as pv
from pdedit.errors import BadInput, Unsupported
from pdedit.evaluate.flow import dis_flow, non_occluded, warp_back

logger = logging.getLogger(__name__)

__all__ = ["MAX_PSNR", "psnr", "ssim", "EditScores", "EditReport", "evaluate_edits", "format_table",
           "plot_per_frame", "write_edit_comparison"]

MAX_PSNR = 100.0  # dB given to identical frames (a finite number, so JSON stays JSON)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 frames, at most MAX_PSNR."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return MAX_PSNR if mse == 0 else min(MAX_PSNR, 10.0 * math.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 RGB frames (scikit-image: uniform 7x7 windows, channels averaged)."""
    from skimage.metrics import structural_similarity

    side = min(a.shape[:2])
    win = min(7, side if side % 2 else side - 1)  # the window must fit the frame and be odd
    return float(structural_similarity(a, b, channel_axis=2, data_range=255, win_size=max(win, 3)))


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean of the finite values, None when there are none."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(kept)) if kept else None


@dataclass
class EditScores:
    """The figures of one edited clip (see the module docstring); None where a figure does not apply."""

    path: Path
    frames: int
    keyframe_psnr: float | None
    keyframe_ssim: float | None
    warp_error: float | None
    source_warp_error: float | None
    warp_error_ratio: float | None
    flow_epe: float | None
    oracle_psnr: float | None
    per_frame: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON form: path, keyframe_psnr, warp_error, warp_error_ratio, flow_epe, oracle_psnr, per_frame."""
        return {"path": str(self.path), "keyframe_psnr": self.keyframe_psnr, "warp_error": self.warp_error,
                "warp_error_ratio": self.warp_error_ratio, "flow_epe": self.flow_epe,
                "oracle_psnr": self.oracle_psnr, "per_frame": self.per_frame}


@dataclass
class EditReport:
    """Scores of several edited versions of one source."""

    source: Path
    videos: list[EditScores]

    def to_dict(self) -> dict:
        """``{"source": ..., "videos": [...]}`` for scripts and the batch report."""
        return {"source": str(self.source), "videos": [v.to_dict() for v in self.videos]}


def _keyframe_target(edit: str | os.PathLike | None, source_frame: np.ndarray, oracle, which: str,
                     resize: str) -> np.ndarray | None:
    """What frame 0 or N-1 should look like: the edit image, the edit spec applied, or the oracle's frame."""
    from pdedit.instructions import apply_edit, is_edit_spec

    if edit is None:
        return apply_edit(source_frame, oracle) if oracle is not None else None
    text = str(edit)
    if is_edit_spec(text) and not Path(text).exists():
        return apply_edit(source_frame, text)
    try:
        image = pv.load_image(text)
    except BadInput as err:
        raise BadInput(f"{which}: {err}") from None
    h, w = source_frame.shape[:2]
    return pv.resize_frame(image, (w, h), resize)


def _check_oracle(oracle: str | None):
    """The parsed oracle spec; BadInput unless it is a weight-free ``auto:`` edit."""
    if oracle is None:
        return None
    from pdedit.instructions import parse_edit_spec

    spec = parse_edit_spec(oracle)
    if spec.kind != "auto":
        raise BadInput(f"--oracle {oracle}: the oracle edits every frame, so it must be a weight-free auto: spec "
                       "(e.g. --oracle auto:sepia); learned editors are not consistent from frame to frame")
    return spec


def _pairs(frames: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Consecutive pairs of a frame stream, holding two frames at a time."""
    prev = next(frames, None)
    for frame in frames:
        yield prev, frame
        prev = frame


def _score_one(path: Path, source_info: pv.VideoInfo, *, first_edit, last_edit, oracle, start, end, fps,
               resize: str, progress: bool) -> EditScores:
    """Score one edited clip against the source window sampled at its frame count and size."""
    from tqdm.auto import tqdm

    from pdedit.instructions import apply_edit

    info = pv.probe(path)
    size, n = (info.width, info.height), info.frame_count
    source = pv.Clip(source_info, pv.plan_window(source_info, start, end, n, fps), size, resize)
    edited = pv.Clip(info, pv.plan_window(info), size)

    # 1. Keyframes: frame 0 and N-1 against the edits.
    key_psnr, key_ssim = {}, {}
    for which, edit, position in (("first", first_edit, 0), ("last", last_edit, n - 1)):
        target = _keyframe_target(edit, source.frame(position), oracle, f"--{which}-edit", resize)
        if target is not None:
            frame = edited.frame(position)
            key_psnr[which], key_ssim[which] = psnr(frame, target), ssim(frame, target)

    # 2. One streaming pass over both clips: warping errors, flow EPE, oracle PSNR.
    warp, source_warp, epe, oracle_psnr = [], [], [], []
    bar = tqdm(total=n - 1, desc=f"scoring {path.name}", unit="pair", disable=not progress)
    for (s0, s1), (o0, o1) in zip(_pairs(iter(source)), _pairs(iter(edited))):
        if oracle is not None:
            if not oracle_psnr:
                oracle_psnr.append(psnr(o0, apply_edit(s0, oracle)))
            oracle_psnr.append(psnr(o1, apply_edit(s1, oracle)))
        back = dis_flow(s1, s0)  # source flow t+1 -> t
        mask = non_occluded(back, dis_flow(s0, s1))
        if not mask.any():  # a cut or a blank frame: nothing to compare along the flow
            warp.append(None), source_warp.append(None), epe.append(None)
            bar.update(1)
            continue
        for clip_pair, out in (((o0, o1), warp), ((s0, s1), source_warp)):
            a, b = (f.astype(np.float32) / 255.0 for f in clip_pair)
            out.append(float(((b - warp_back(a, back)) ** 2).sum(axis=2)[mask].mean()))
        edited_back = dis_flow(o1, o0)
        epe.append(float(np.sqrt(((edited_back - back) ** 2).sum(axis=2))[mask].mean()))
        bar.update(1)
    bar.close()

    warp_error, floor = _mean(warp), _mean(source_warp)
    ratio = warp_error / floor if warp_error is not None and floor else None
    per_frame = {
        "keyframe_psnr": key_psnr, "keyframe_ssim": key_ssim,
        "warp_error": warp, "source_warp_error": source_warp, "flow_epe": epe,
        "oracle_psnr": oracle_psnr if oracle is not None else None,
    }
    return EditScores(path=path, frames=n, keyframe_psnr=_mean(list(key_psnr.values())),
                      keyframe_ssim=_mean(list(key_ssim.values())), warp_error=warp_error, source_warp_error=floor,
                      warp_error_ratio=ratio, flow_epe=_mean(epe),
                      oracle_psnr=_mean(oracle_psnr) if oracle is not None else None, per_frame=per_frame)


def evaluate_edits(source: str | os.PathLike, edited: Sequence[str | os.PathLike], *,
                   first_edit: str | os.PathLike | None = None, last_edit: str | os.PathLike | None = None,
                   oracle: str | None = None, start: float | None = None, end: float | None = None,
                   fps: float | None = None, resize: str = "crop", progress: bool = False) -> EditReport:
    """Score edited versions of a source clip (weight-free; see the module docstring for the figures).

    Args:
        source: the source video the edits were made from.
        edited: one or more edited videos (e.g. one per engine or setting).
        first_edit, last_edit: the edited keyframes (image paths or edit specs) the edits were given.
        oracle: an ``auto:`` edit spec; every frame is also scored against it applied per frame, and it
            stands in for missing ``first_edit`` / ``last_edit``.
        start, end, fps: the window of the source (as given to `pdedit edit`); each edited clip is
            compared with that window sampled at its own frame count and size.
        resize: how source frames and edit images were fitted to the edited size ("crop", "pad", "fit").
        progress: show a tqdm bar per clip on stderr.

    Raises:
        BadInput: a missing or unreadable video or image, a bad window or spec.
    """
    if not edited:
        raise BadInput("give at least one edited video after the source: pdedit eval edit SOURCE EDITED...")
    if resize not in pv.RESIZE_POLICIES:
        raise BadInput(f"--resize {resize!r} is unknown: use one of {', '.join(pv.RESIZE_POLICIES)}")
    spec = _check_oracle(oracle)
    source_info = pv.probe(source)
    for path in edited:  # every input checked before the work
        pv.probe(path)
    scores = [_score_one(Path(p), source_info, first_edit=first_edit, last_edit=last_edit, oracle=spec,
                         start=start, end=end, fps=fps, resize=resize, progress=progress) for p in edited]
    return EditReport(source=Path(source), videos=scores)


def write_edit_comparison(source: str | os.PathLike, edited: Sequence[str | os.PathLike], output: str | os.PathLike, *,
                          start: float | None = None, end: float | None = None, force: bool = False,
                          progress: bool = False) -> Path:
    """The labelled side-by-side mp4 of the source window and the edited versions (`pdedit.compare`).

    With ``start`` / ``end`` the source window is first cut to a temporary file next to ``output`` (with
    its audio), so every tile shows the same moment; without them the source file is the first tile.
    """
    from pdedit.compare import write_comparison

    labels = ["source", *(Path(p).name for p in edited)]
    if start is None and end is None:
        return write_comparison([source, *edited], output, labels=labels, force=force, progress=progress)
    import tempfile

    info = pv.probe(source)
    pv.check_output(output, inputs=[source, *edited], force=force)  # before the window is cut
    clip = pv.Clip(info, pv.plan_window(info, start, end), (info.width, info.height))
    with tempfile.TemporaryDirectory(dir=Path(output).resolve().parent, prefix=".pdedit-compare-") as tmp:
        window = pv.write_video(Path(tmp) / "source.mp4", clip, clip.fps,
                                audio_from=source if info.has_audio else None,
                                audio_window=(clip.window.start, clip.window.end))
        return write_comparison([window, *edited], output, labels=labels, force=force, progress=progress)


def _cell(value: float | None, digits: int) -> str:
    """A table cell: the value with ``digits`` decimals, or a dash."""
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(report: EditReport) -> str:
    """One row per edited clip, fixed-width columns, for a terminal."""
    header = ["video", "frames", "key PSNR", "key SSIM", "warp err", "ratio", "flow EPE", "oracle PSNR"]
    rows = [[v.path.name, str(v.frames), _cell(v.keyframe_psnr, 2), _cell(v.keyframe_ssim, 3),
             _cell(v.warp_error, 5), _cell(v.warp_error_ratio, 2), _cell(v.flow_epe, 2), _cell(v.oracle_psnr, 2)]
            for v in report.videos]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_per_frame(report: EditReport, path: str | os.PathLike) -> Path:
    """Write a PNG of the per-frame figures (warping error, flow EPE, oracle PSNR), one line per clip."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise Unsupported("the per-frame plot needs matplotlib, which is not installed: pip install matplotlib") \
            from None
    panels = [("warp_error", "warping error (along the source's flow)"), ("flow_epe", "flow EPE vs source (px)")]
    if any(v.per_frame["oracle_psnr"] is not None for v in report.videos):
        panels.append(("oracle_psnr", "PSNR vs the oracle (dB)"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)

    def positions(values: list, pairs: bool) -> np.ndarray:
        """x of each figure: its frame's place in the window (0 first, 1 last), so clips of any length align;
        a pair (t, t+1) is drawn at t + 1, the frame it judges."""
        count = len(values) + (1 if pairs else 0)
        return (np.arange(len(values)) + (1 if pairs else 0)) / max(1, count - 1)

    for ax, (key, title) in zip(axes[:, 0], panels):
        for v in report.videos:
            values = v.per_frame[key]
            if values is not None:
                ax.plot(positions(values, key != "oracle_psnr"), [np.nan if y is None else y for y in values],
                        marker=".", label=v.path.name)
        if key == "warp_error" and report.videos:
            first = report.videos[0]
            floor = first.per_frame["source_warp_error"]
            ax.plot(positions(floor, True), [np.nan if y is None else y for y in floor], "k--", lw=1,
                    label=f"source (as {first.path.name})")
            ax.set_yscale("log")  # flicker multiplies the error: ratios read best on a log axis
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("place in the window (0 = first frame, 1 = last)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with pv.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
