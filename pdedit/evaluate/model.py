"""The paper's model metrics: FVD, FID, IS and CLIPSIM of generated clips against real ones.

PixelDance (arXiv 2311.10982) reports FVD and CLIPSIM on MSR-VTT, and IS, FID and FVD
on UCF-101. Here the generated clips come from a PixelDance model folder (one per row of a prompts
CSV) or from a folder of clips made elsewhere; the real clips from a folder of videos. Every
extractor is read from a local file or folder (`pdedit.evaluate.i3d`, `.inception`, `.c3d`, `.clip`).

The figures depend on the protocol as much as on the model, so `Protocol` holds every knob that moves
them and the report carries it: clip length and frame rate, the resolution each network sees, how many
clips, which I3D layer, how many IS splits.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pdedit import video as pv
from pdedit.errors import BadInput, Unsupported

logger = logging.getLogger(__name__)

__all__ = ["METRICS", "Protocol", "Extractors", "ModelReport", "read_prompts", "evaluate_model"]

METRICS = ("fvd", "fid", "is", "clipsim")


@dataclass(frozen=True)
class Protocol:
    """The knobs that change the figures; report them beside any number you compare.

    Args:
        frames: frames per clip, real and generated: the first ``frames`` frames of each video at
            ``fps`` (FVD papers use 16; the I3D sees all of them).
        fps: the rate clips are sampled at; None = each video's own rate.
        num_samples: use at most this many clips of each set (sorted by name); None = all. Published
            UCF-101 FVDs use 2048 or 10000 generated clips; small sets bias FVD and FID upwards.
        fvd_size: side of the square every frame is resized to for I3D (224, as the FVD reference).
        i3d_layer: "logits" (the 400 Kinetics logits, as the FVD reference) or "pool" (1024-d
            features some papers use; not comparable with the former).
        fid_size: side of the square frames are resized to for Inception (299).
        fid_frames: frames per clip used for FID, spread evenly; None = every frame of the clip.
        is_splits: splits of the generated set the Inception Score is averaged over (10 in the
            UCF-101 protocol).
    """

    frames: int = 16
    fps: float | None = None
    num_samples: int | None = None
    fvd_size: int = 224
    i3d_layer: str = "logits"
    fid_size: int = 299
    fid_frames: int | None = None
    is_splits: int = 10

    def check(self) -> None:
        """BadInput naming the first knob out of range."""
        if self.frames < 2:
            raise BadInput(f"--frames {self.frames}: a clip needs at least 2 frames (FVD papers use 16)")
        if self.fps is not None and not self.fps > 0:
            raise BadInput(f"--fps {self.fps:g} must be positive")
        if self.num_samples is not None and self.num_samples < 2:
            raise BadInput(f"--num-samples {self.num_samples}: the metrics need at least 2 clips of each set")
        if self.i3d_layer not in ("logits", "pool"):
            raise BadInput(f"--i3d-layer {self.i3d_layer!r} is unknown: use logits (the FVD reference) or pool")
        if self.fvd_size < 32:
            raise BadInput(f"--fvd-size {self.fvd_size}: the I3D needs frames of at least 32 px (FVD uses 224)")
        if self.fid_size < 75:
            raise BadInput(f"--fid-size {self.fid_size}: Inception-v3 needs frames of at least 75 px (FID uses 299)")
        if self.fid_frames is not None and self.fid_frames < 1:
            raise BadInput(f"--fid-frames {self.fid_frames} must be at least 1")
        if self.is_splits < 1:
            raise BadInput(f"--is-splits {self.is_splits} must be at least 1")


@dataclass(frozen=True)
class Extractors:
    """Where each metric's network is: a weight file (I3D, Inception, C3D) or a CLIP folder."""

    i3d: str | os.PathLike | None = None
    inception: str | os.PathLike | None = None
    c3d: str | os.PathLike | None = None
    clip: str | os.PathLike | None = None


@dataclass
class ModelReport:
    """The figures (None for a metric not asked for), the sets they came from, and the protocol."""

    real: Path
    generated: str
    real_clips: int
    generated_clips: int
    protocol: Protocol
    fvd: float | None = None
    fid: float | None = None
    inception_score: float | None = None
    inception_score_std: float | None = None
    clipsim: float | None = None
    extractors: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"real": str(self.real), "generated": self.generated, "real_clips": self.real_clips,
                "generated_clips": self.generated_clips, "fvd": self.fvd, "fid": self.fid,
                "is": self.inception_score, "is_std": self.inception_score_std, "clipsim": self.clipsim,
                "protocol": asdict(self.protocol), "extractors": self.extractors}


def _videos(folder: str | os.PathLike, what: str, limit: int | None) -> list[Path]:
    """The video files of a folder, sorted by name (the first ``limit``); BadInput when there are none."""
    path = Path(folder)
    if not path.is_dir():
        raise BadInput(f"{what} {path} is not a folder: give a folder of video files")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in pv.VIDEO_SUFFIXES and not p.name.startswith("."))
    if len(files) < 2:
        raise BadInput(f"{what} {path} holds {len(files)} video(s); the metrics need at least 2 clips")
    return files[:limit] if limit else files


def _read_clip(path: Path, protocol: Protocol) -> np.ndarray:
    """The first ``protocol.frames`` frames of a video at ``protocol.fps``, uint8 (T, H, W, 3)."""
    info = pv.probe(path)
    window = pv.plan_window(info, 0.0, None, num_frames=protocol.frames, fps=protocol.fps or info.fps)
    return np.stack(list(pv.Clip(info, window, (info.width, info.height))))


@dataclass(frozen=True)
class _Row:
    """One prompt of the CSV: the text, the instructions for generating, the clip it names."""

    prompt: str
    first: Path | None = None
    last: Path | None = None
    video: str | None = None


def read_prompts(path: str | os.PathLike) -> list[_Row]:
    """Rows of a prompts CSV: a ``prompt`` column, and ``first`` / ``last`` (image or video paths, relative to
    the CSV) for generating, or ``video`` (a file name in the generated folder) for clips made elsewhere."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"prompts file {path} does not exist: give a CSV with a header row and a prompt column")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "prompt" not in columns:
            raise BadInput(f"prompts file {path} has no 'prompt' column (columns: {', '.join(columns) or 'none'}): "
                           "write a header row such as prompt,first")
        rows = []
        for n, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
            if not row.get("prompt"):
                raise BadInput(f"prompts file {path}, line {n}: the prompt is empty")
            rows.append(_Row(
                prompt=row["prompt"],
                first=path.parent / row["first"] if row.get("first") else None,
                last=path.parent / row["last"] if row.get("last") else None,
                video=row.get("video") or None,
            ))
    if not rows:
        raise BadInput(f"prompts file {path} has no rows under its header")
    return rows


def _instruction(path: Path) -> np.ndarray:
    """An image instruction: the image, or the first frame of a video."""
    return pv.open_clip(path, num_frames=2).first() if path.suffix.lower() in pv.VIDEO_SUFFIXES else pv.load_image(path)


def _generate(model: str | os.PathLike, rows: Sequence[_Row], protocol: Protocol, *, size, steps: int,
              guidance: float, tau: float, seed: int, device: str,
              save: Path | None) -> Iterator[tuple[str, np.ndarray, str]]:
    """(name, clip, prompt) for each row, generated by the model folder's engine with seed ``seed + row``.

    Through the one generation step (``pdedit.generation``), so any generative engine (pixeldance, wan, ltx)
    can be scored. With ``save``, each clip is also written there as clip_NNNNN.mp4 (N: the row), and a
    prompts.csv naming them, so another run can score the same clips with ``--generated``.
    """
    from pdedit.generation import generate_video, open_generator

    gen = open_generator("auto", model, device=device)
    written = []
    for i, row in enumerate(rows):
        job = gen.job(_instruction(row.first), _instruction(row.last) if row.last else None, size=size,
                      prompt=row.prompt, frames=protocol.frames, fps=protocol.fps, steps=steps, guidance=guidance,
                      tau=tau, seed=seed + i)
        clip = np.stack(generate_video(job, gen.engine))
        if save is not None:
            name = f"clip_{i + 1:05d}.mp4"
            pv.write_video(save / name, clip, job.fps)
            written.append((name, row.prompt))
        yield f"row {i + 2}", clip, row.prompt
    if save is not None:
        with pv.atomic_path(save / "prompts.csv") as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["video", "prompt"])
            writer.writerows(written)


def _load_extractors(metrics: Sequence[str], extractors: Extractors, device: str) -> dict:
    """Each asked-for metric's network, loaded before any clip is read (a missing one fails first)."""
    nets = {}
    if "fvd" in metrics:
        from pdedit.evaluate.i3d import load_i3d

        nets["fvd"] = load_i3d(extractors.i3d, device)
    if "fid" in metrics:
        from pdedit.evaluate.inception import load_inception

        nets["fid"] = load_inception(extractors.inception, device)
    if "is" in metrics:
        from pdedit.evaluate.c3d import load_c3d

        nets["is"] = load_c3d(extractors.c3d, device)
    if "clipsim" in metrics:
        from pdedit.evaluate.clip import load_clip

        nets["clipsim"] = load_clip(extractors.clip, device)
    return nets


class _Features:
    """Per-metric features of one set of clips, accumulated clip by clip."""

    def __init__(self, nets: dict, protocol: Protocol):
        self.nets, self.protocol = nets, protocol
        self.values: dict[str, list] = {k: [] for k in nets}

    def add(self, clip: np.ndarray, prompt: str | None, generated: bool) -> None:
        """Features of one uint8 clip (T, H, W, 3); IS and CLIPSIM only for generated clips."""
        p = self.protocol
        if "fvd" in self.nets:
            from pdedit.evaluate.i3d import i3d_features

            self.values["fvd"].append(i3d_features(self.nets["fvd"], clip, p.fvd_size, p.i3d_layer))
        if "fid" in self.nets:
            from pdedit.evaluate.inception import inception_features

            frames = clip[list(pv.even_indices(0, len(clip) - 1, p.fid_frames))] if p.fid_frames else clip
            self.values["fid"].extend(inception_features(self.nets["fid"], frames, p.fid_size))
        if generated and "is" in self.nets:
            from pdedit.evaluate.c3d import c3d_probabilities

            self.values["is"].append(c3d_probabilities(self.nets["is"], clip))
        if generated and "clipsim" in self.nets:
            self.values["clipsim"].append(self.nets["clipsim"].similarity(clip, prompt))


def _device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise Unsupported(f"--device {device}: torch sees no CUDA GPU here; use --device cpu (slow) or auto")
    if not device.startswith(("cuda", "cpu")):
        raise BadInput(f"--device {device!r} is unknown: use auto, cpu or cuda")
    return device


def evaluate_model(real: str | os.PathLike, *, generated: str | os.PathLike | None = None,
                   model: str | os.PathLike | None = None, prompts: str | os.PathLike | None = None,
                   metrics: Sequence[str] = METRICS, extractors: Extractors = Extractors(),
                   protocol: Protocol = Protocol(), size: tuple[int, int] | None = None, steps: int = 25,
                   guidance: float = 7.5, tau: float = 1.0, seed: int = 0,
                   save_generated: str | os.PathLike | None = None, device: str = "auto",
                   progress: bool = False) -> ModelReport:
    """FVD, FID, IS and CLIPSIM of generated clips against real ones.

    Args:
        real: a folder of real videos (FVD and FID compare against them).
        generated: a folder of generated videos; or None to generate with ``model``.
        model: a PixelDance model folder that generates one clip per row of ``prompts``.
        prompts: a CSV with a ``prompt`` column, plus ``first``/``last`` instruction paths for generating,
            or ``video`` (a file of ``generated``) so CLIPSIM knows each clip's prompt.
        metrics: any of "fvd", "fid", "is", "clipsim".
        extractors: the local weights of each metric's network.
        protocol: clip length, rates, resolutions, sample count, I3D layer, IS splits (see `Protocol`).
        size, steps, guidance, tau, seed: the sampler settings when generating (row i uses ``seed + i``).
        save_generated: a new (or empty) folder to keep the generated clips in, with a prompts.csv that
            names them, for later runs with ``generated``.
        device: "auto" (CUDA when present), "cpu" or "cuda".
        progress: tqdm bars on stderr.

    Raises:
        BadInput: bad folders, CSV or knobs; MissingModel: a missing or mismatched extractor.
    """
    from tqdm.auto import tqdm

    from pdedit.evaluate.scores import frechet_distance, gaussian_stats, inception_score

    # 1. Check inputs, then load every network, before reading any clip.
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise BadInput(f"--metrics {','.join(metrics)}: use a comma-separated choice of {', '.join(METRICS)}")
    protocol.check()
    if (generated is None) == (model is None):
        raise BadInput("give exactly one of --generated DIR (clips made elsewhere) or --model DIR (generate them)")
    rows = read_prompts(prompts) if prompts is not None else None
    if model is not None and rows is None:
        raise BadInput("--model needs --prompts prompts.csv (columns prompt,first[,last]) to generate from")
    real_files = _videos(real, "--real", protocol.num_samples)
    if generated is not None:
        gen_files = _videos(generated, "--generated", protocol.num_samples)
        by_name = {r.video: r.prompt for r in rows or [] if r.video}
        if "clipsim" in metrics:
            unnamed = [p.name for p in gen_files if p.name not in by_name]
            if unnamed:
                raise BadInput(f"CLIPSIM needs each generated clip's prompt: {unnamed[0]} has no row in "
                               f"{prompts or '--prompts'} (add a video column naming the files), or leave "
                               "clipsim out of --metrics")
    else:
        rows = rows[:protocol.num_samples] if protocol.num_samples else rows
        if len(rows) < 2:
            raise BadInput(f"prompts file {prompts} has {len(rows)} row(s); the metrics need at least 2 clips")
        for line, row in enumerate(rows, start=2):
            if row.first is None:
                raise BadInput(f"prompts row {line} has no 'first' image: PixelDance generates from a first frame")
            for which, path in (("first", row.first), ("last", row.last)):
                if path is not None and not path.exists():
                    raise BadInput(f"prompts row {line}: {which} {path} does not exist (paths are relative to the CSV)")
    if "is" in metrics:
        count = len(gen_files) if generated is not None else len(rows)
        if count < protocol.is_splits:
            raise BadInput(f"the Inception Score over {protocol.is_splits} splits needs at least that many generated "
                           f"clips, there are {count}: pass --is-splits 1 for a quick look (the UCF-101 protocol "
                           "uses 10)")
    save = Path(save_generated) if save_generated is not None else None
    if save is not None:
        if model is None:
            raise BadInput("--save-generated keeps clips that --model generates; with --generated they exist already")
        if save.exists() and (not save.is_dir() or any(save.iterdir())):
            raise BadInput(f"--save-generated {save} exists and is not an empty folder: choose a new folder")
        if not save.parent.resolve().is_dir():
            raise BadInput(f"--save-generated {save}: folder {save.parent} does not exist; create it first")
    device = _device(device)
    nets = _load_extractors(metrics, extractors, device)
    if save is not None:
        save.mkdir(exist_ok=True)

    # 2. Features of the real clips (FVD and FID only).
    real_features = _Features({k: v for k, v in nets.items() if k in ("fvd", "fid")}, protocol)
    if real_features.nets:
        for path in tqdm(real_files, desc="real clips", unit="clip", disable=not progress):
            real_features.add(_read_clip(path, protocol), None, generated=False)

    # 3. Features of the generated clips.
    if generated is not None:
        stream = ((p.name, _read_clip(p, protocol), by_name.get(p.name)) for p in gen_files)
        total = len(gen_files)
    else:
        stream = _generate(model, rows, protocol, size=size, steps=steps, guidance=guidance, tau=tau, seed=seed,
                           device=device, save=save)
        total = len(rows)
    gen_features = _Features(nets, protocol)
    for name, clip, prompt in tqdm(stream, total=total, desc="generated clips", unit="clip", disable=not progress):
        logger.info("scoring generated clip %s (%d frames)", name, len(clip))
        gen_features.add(clip, prompt, generated=True)

    # 4. The figures.
    report = ModelReport(real=Path(real), generated=str(generated if generated is not None else model),
                         real_clips=len(real_files), generated_clips=total, protocol=protocol,
                         extractors={k: str(v) for k, v in asdict(extractors).items() if v is not None})
    for key in ("fvd", "fid"):
        if key in nets:
            value = frechet_distance(*gaussian_stats(np.stack(real_features.values[key])),
                                     *gaussian_stats(np.stack(gen_features.values[key])))
            setattr(report, key, value)
    if "is" in nets:
        report.inception_score, report.inception_score_std = inception_score(
            np.stack(gen_features.values["is"]), protocol.is_splits)
    if "clipsim" in nets:
        report.clipsim = float(np.mean(gen_features.values["clipsim"]))
    return report
