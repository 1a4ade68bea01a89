"""Instruction adherence against tau: PixelDance's tau study (Zeng et al., arXiv 2311.10982, Fig. 7) in numbers.

Each held-out clip gives the model its real first frame and its last frame (or an instruction made
from it: a sketch, a pose, ...); the model generates at several tau, and every generated clip is
scored against the clip's real first and last frame:

- ``first_mse`` / ``last_mse``: mean squared error of generated frame 0 / F-1 (values in [0, 1]);
- ``first_px`` / ``last_px``: distance in pixels between the centre of what differs from the background
  (the frame's border median) in the generated and in the real frame: the end-state error of a moving
  object, meaningful for objects on a plain background (the moving shapes of finetune).

The last-frame error should fall as tau grows (the last frame guides the first tau of the steps);
at tau = 0 the model gets no last frame. The same seed is used at every tau and for every model, so
differences between points are not differences of noise draws.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pdedit.errors import BadInput

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TAUS",
    "METRICS",
    "TauCurve",
    "object_centre",
    "adherence",
    "load_clips",
    "parse_taus",
    "tau_curve",
    "plot_curves",
]

DEFAULT_TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)
METRICS = ("first_mse", "first_px", "last_mse", "last_px")
# Grey levels: generated frames carry faint sampling noise over the background; below this a pixel
# is background, or the noise would pull every centre towards the middle of the frame.
CENTRE_THRESHOLD = 40


def object_centre(frame: np.ndarray, threshold: float = CENTRE_THRESHOLD) -> np.ndarray:
    """Centre (x, y) in px of what differs from the border median by more than ``threshold`` grey levels.

    Pixel i covers [i, i + 1), so its centre is i + 0.5; a frame with nothing on it gives the image centre.
    """
    img = frame.astype(np.float32)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    weight = np.abs(img - np.median(border, axis=0)).max(axis=-1)  # (H, W)
    weight = np.where(weight > threshold, weight, 0.0)
    h, w = weight.shape
    total = float(weight.sum())
    if total <= 0:
        return np.array([w / 2, h / 2], np.float32)
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    return np.array([(weight * xs).sum() / total, (weight * ys).sum() / total], np.float32)


def adherence(video: Sequence[np.ndarray], real_first: np.ndarray, real_last: np.ndarray) -> dict[str, float]:
    """First/last-frame MSE and centre error (px) of a generated clip (uint8 frames) against the real frames."""
    out = {}
    for name, generated, real in (("first", video[0], real_first), ("last", video[-1], real_last)):
        out[f"{name}_mse"] = float(np.mean((generated / 255.0 - real / 255.0) ** 2))
        out[f"{name}_px"] = float(np.linalg.norm(object_centre(generated) - object_centre(real)))
    return out


@dataclass
class TauCurve:
    """Per-clip adherence of one model at each tau: ``scores[metric]`` is (len(taus), clips)."""

    model: str
    instruction: str
    taus: tuple[float, ...]
    scores: dict[str, np.ndarray]
    moved_px: np.ndarray  # (clips,): how far the object moves from the real first to the real last frame
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def clips(self) -> int:
        """Number of clips measured."""
        return int(self.moved_px.shape[0])

    def mean(self, metric: str) -> np.ndarray:
        """Mean over clips at each tau."""
        return self.scores[metric].mean(axis=1)

    def se(self, metric: str) -> np.ndarray:
        """Standard error of the mean over clips at each tau (0 for a single clip)."""
        values = self.scores[metric]
        if values.shape[1] < 2:
            return np.zeros(values.shape[0])
        return values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: means and standard errors per tau, the clips' own motion, and the settings."""
        return {
            "model": self.model,
            "instruction": self.instruction,
            "clips": self.clips,
            "taus": list(self.taus),
            "moved_px": {"mean": float(self.moved_px.mean()), "se": float(_se(self.moved_px))},
            "curves": {m: {"mean": self.mean(m).round(4).tolist(), "se": self.se(m).round(4).tolist()}
                       for m in METRICS},
            **self.settings,
        }

    def table(self) -> str:
        """A text table: one row per tau, mean ± standard error of each metric."""
        head = f"{'tau':>5} | " + " | ".join(f"{m:>15}" for m in METRICS)
        rows = [head, "-" * len(head)]
        for i, tau in enumerate(self.taus):
            cells = [f"{self.mean(m)[i]:.3f} ± {self.se(m)[i]:.3f}" for m in METRICS]
            rows.append(f"{tau:5.2f} | " + " | ".join(f"{c:>15}" for c in cells))
        return "\n".join(rows)


def _se(values: np.ndarray) -> float:
    """Standard error of the mean of a 1-D array."""
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def parse_taus(text: str) -> tuple[float, ...]:
    """'0,0.5,1' -> (0.0, 0.5, 1.0); BadInput unless every value is a number in [0, 1]."""
    try:
        taus = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise BadInput(f"--taus {text!r} must be numbers in [0, 1] separated by commas, e.g. 0,0.5,1") from None
    if not taus or any(not 0.0 <= t <= 1.0 for t in taus):
        raise BadInput(f"--taus {text!r} must be numbers in [0, 1] separated by commas, e.g. 0,0.5,1")
    return taus


def load_clips(folder: str | Path, num_frames: int, size: tuple[int, int], prompt: str = "",
               limit: int | None = None) -> list[dict[str, Any]]:
    """Held-out clips from ``folder``: video files, or subfolders of PNG frames (lossless, for tiny clips).

    Each clip is resampled to ``num_frames`` evenly spaced frames at ``size`` (W, H, centre crop). A
    ``NAME.txt`` beside a clip (or ``caption.txt`` inside a frame folder) is its prompt, else ``prompt``.
    Returns dicts with ``frames`` (F, H, W, 3) uint8, ``caption`` and ``name``, sorted by name.
    """
    from pdedit.video import VIDEO_SUFFIXES, even_indices, load_image, open_clip, resize_frame

    root = Path(folder)
    if not root.is_dir():
        raise BadInput(f"--clips {root} is not a folder: give a folder of held-out videos (or of PNG-frame folders)")
    entries = sorted(p for p in root.iterdir()
                     if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or (p.is_dir() and any(p.glob("*.png"))))
    if not entries:
        raise BadInput(f"--clips {root} holds no videos ({', '.join(VIDEO_SUFFIXES)}) and no folders of PNG frames")
    clips = []
    for path in entries[:limit]:
        if path.is_dir():
            files = sorted(path.glob("*.png"))
            if len(files) < num_frames:
                raise BadInput(f"clip {path} has {len(files)} PNG frames, fewer than the {num_frames} frames asked for: "
                               f"lower --frames or add frames")
            frames = [resize_frame(load_image(files[i]), size) for i in even_indices(0, len(files) - 1, num_frames)]
            caption_file = path / "caption.txt"
        else:
            frames = open_clip(path, num_frames=num_frames, size=size).frames()
            caption_file = path.with_suffix(".txt")
        caption = caption_file.read_text(encoding="utf-8").strip() if caption_file.is_file() else prompt
        clips.append({"frames": np.stack(frames), "caption": caption, "name": path.name})
    return clips


def tau_curve(
    pipe: Any,
    clips: Sequence[dict[str, Any]],
    taus: Sequence[float] = DEFAULT_TAUS,
    *,
    instruction: str = "image",
    method: str | None = None,
    steps: int = 25,
    guidance: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
    name: str = "model",
    progress: bool = False,
) -> TauCurve:
    """Generate every clip at every tau and score first- and last-frame adherence.

    The sweep calls the PixelDance pipeline itself rather than the one-clip generation step
    (`pdedit.generation`): it needs many clips sampled in one batch, with the same noise at every tau.

    Args:
        pipe: a PixelDancePipeline.
        clips: dicts with ``frames`` (F, H, W, 3) uint8 and ``caption`` (see `load_clips`); all the same shape.
        taus: fractions of the denoising steps that see the last frame.
        instruction: what the model is given as the last frame: "image" (the real last frame) or a kind of
            `pdedit.instructions.convert` made from it (sketch, pose, boxes, depth).
        method: the converter's method (e.g. "silhouette" for sketches); None = its default.
        steps: denoising steps T; guidance: classifier-free guidance on text (1 = text branch only).
        seed: seed of the sampling noise; batch ``k`` of clips uses ``seed + k`` at every tau.
        batch_size: clips generated together (changes which noise each clip draws, not the expectation).
        name: the model's label in tables, plots and JSON.
        progress: show a tqdm bar (stderr).

    Returns:
        A `TauCurve` with per-clip scores at each tau.
    """
    import torch
    from tqdm.auto import tqdm

    from pdedit.video import to_uint8

    if not clips:
        raise BadInput("no clips to measure: give at least one held-out clip")
    shape = clips[0]["frames"].shape
    if any(c["frames"].shape != shape for c in clips):
        raise BadInput("held-out clips differ in shape: load them at one size and frame count")
    num_frames, height, width = shape[0], shape[1], shape[2]
    lasts = [c["frames"][-1] for c in clips]
    if instruction != "image":
        from pdedit.instructions import convert

        lasts = [convert(f, instruction, method=method) for f in lasts]
    scores = {m: np.zeros((len(taus), len(clips))) for m in METRICS}
    batches = range(0, len(clips), batch_size)
    bar = tqdm(total=len(taus) * len(batches), desc=f"tau sweep {name}", disable=not progress, leave=False)
    for i, tau in enumerate(taus):
        for k, start in enumerate(batches):
            batch = clips[start : start + batch_size]
            out = pipe(
                prompt=[c["caption"] for c in batch],
                first_frame=[c["frames"][0] for c in batch],
                last_frame=lasts[start : start + len(batch)],
                num_frames=num_frames, height=height, width=width,
                num_inference_steps=steps, guidance_scale=guidance, tau=float(tau),
                generator=torch.Generator().manual_seed(seed + k), output_type="np",
            ).frames  # (B, F, H, W, 3) in [0, 1]
            for j, clip in enumerate(batch):
                video = to_uint8(out[j : j + 1])
                for metric, value in adherence(video, clip["frames"][0], clip["frames"][-1]).items():
                    scores[metric][i, start + j] = value
            bar.update()
    bar.close()
    moved = np.array([np.linalg.norm(object_centre(c["frames"][0]) - object_centre(c["frames"][-1])) for c in clips])
    label = instruction if method is None else f"{instruction}:{method}"
    return TauCurve(model=name, instruction=label, taus=tuple(float(t) for t in taus), scores=scores, moved_px=moved,
                    settings={"steps": steps, "guidance": guidance, "seed": seed, "size": [width, height],
                              "frames": num_frames})


def plot_curves(curves: Sequence[TauCurve], path: str | Path, title: str | None = None) -> Path:
    """Plot last- and first-frame centre error against tau (mean ± standard error) for each curve; a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pdedit.video import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric, label in ((axes[0], "last_px", "last-frame error (px)"),
                              (axes[1], "first_px", "first-frame error (px)")):
        for curve in curves:
            ax.errorbar(curve.taus, curve.mean(metric), yerr=curve.se(metric), marker="o", capsize=3,
                        label=f"{curve.model} ({curve.instruction})")
        if metric == "last_px" and curves:
            moved = curves[0].moved_px.mean()
            ax.axhline(moved, color="grey", linestyle=":", label=f"real motion ({moved:.2f} px)")
        ax.set_xlabel("tau (fraction of steps that see the last frame)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    n = curves[0].clips if curves else 0
    fig.suptitle(title or f"adherence against tau, {n} held-out clips")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
