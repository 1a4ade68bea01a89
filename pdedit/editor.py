"""One edit job from file to file: ``edit_video(video, first_edit, last_edit, output=...)``.

The steps, in order: check every input (engine and model, video, edit images or specs, window, output
paths) before any heavy work; open the source window as a streaming Clip; make the keyframe
instructions (load and map an edit image with the frames' resize policy, or apply an edit spec to the
window's own first/last frame; optionally convert the last one to a sketch, pose, boxes or depth
instruction); render with the engine; stream the frames into the H.264 writer with the window's audio;
write a preview sheet on request.

Frames and time: the propagate engine edits every frame of the window at the source fps (or the
frames/fps asked for). Generative engines make ``frames`` frames (default: the model's clip length)
sampled evenly over the window, played at ``frames / window duration`` fps, so the output lasts as long
as the window and the source audio stays in sync (see ``pdedit.video.plan_window``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pdedit import video as pv
from pdedit.engines import choose
from pdedit.errors import BadInput

logger = logging.getLogger(__name__)

__all__ = ["EditResult", "edit_video", "ASPECT_TOLERANCE", "INSTRUCTION_KINDS"]

ASPECT_TOLERANCE = 0.02  # an edit image may differ from the video's aspect by 2% (rounding, a cropped row)
INSTRUCTION_KINDS = ("image", "sketch", "pose", "boxes", "depth")
PREVIEW_FRAMES = 12


@dataclass
class EditResult:
    """What `edit_video` did.

    Attributes:
        output: the written mp4.
        engine: the engine that ran; reason: why it was chosen.
        frames: frames written; fps: their frame rate; size: (w, h); seconds: the output's duration.
        start, end: the source window in seconds; audio: whether the source audio was carried.
        preview: the preview sheet written, or None; comparison: the side-by-side video written, or None.
        timings: seconds per step ("prepare", "keyframes", "render", "write", "preview", "total").
    """

    output: Path
    engine: str
    reason: str
    frames: int
    fps: float
    size: tuple[int, int]
    seconds: float
    start: float
    end: float
    audio: bool
    preview: Path | None = None
    comparison: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dict (paths as strings)."""
        out = dict(self.__dict__)
        out["output"] = str(self.output)
        out["preview"] = str(self.preview) if self.preview else None
        out["comparison"] = str(self.comparison) if self.comparison else None
        out["size"] = list(self.size)
        return out


@dataclass
class _Edit:
    """One keyframe edit as given: an image already loaded, or a spec to apply to the source frame."""

    text: str
    image: np.ndarray | None = None
    spec: object | None = None

    @property
    def path(self) -> str | None:
        """The image path, when the edit is an image file."""
        return self.text if self.image is not None else None


def _read_edit(text: str | os.PathLike, which: str) -> _Edit:
    """Load an edit image, or parse an edit spec (``auto:...``): BadInput naming the option if neither works."""
    from pdedit.instructions import is_edit_spec, parse_edit_spec

    text = str(text)
    if is_edit_spec(text) and not Path(text).exists():
        return _Edit(text, spec=parse_edit_spec(text))
    path = Path(text)
    if not path.exists():
        raise BadInput(f"{which} {text} does not exist: give an edited image (PNG/JPEG) or a spec like auto:sepia")
    try:
        image = pv.load_image(path)
    except BadInput as err:
        raise BadInput(f"{which}: {err}") from None
    return _Edit(text, image=image)


def _check_aspect(edit: _Edit, which: str, info: pv.VideoInfo) -> None:
    """BadInput when an edit image's aspect differs from the video's by more than ASPECT_TOLERANCE."""
    if edit.image is None:
        return
    h, w = edit.image.shape[:2]
    if pv.aspect_mismatch((w, h), (info.width, info.height)) > ASPECT_TOLERANCE:
        raise BadInput(
            f"{which} {edit.text} is {w}x{h} (aspect {w / h:.2f}) but {info.path.name} is {info.width}x{info.height} "
            f"(aspect {info.width / info.height:.2f}): crop or pad the image to the video's aspect "
            f"(edit a frame from `pdedit frames {info.path.name} --out DIR`)"
        )


def _even_size(width: int, height: int) -> tuple[int, int]:
    """The video's own size with even sides (H.264 yuv420p needs them)."""
    return max(2, width - width % 2), max(2, height - height % 2)


def _keyframe(edit: _Edit, source: Callable[[], np.ndarray], clip: pv.Clip, resize: str, *,
              edit_model, seed: int) -> np.ndarray:
    """The edited keyframe at the clip's size: a mapped image, or the spec applied to the source frame."""
    if edit.image is not None:
        return pv.resize_frame(edit.image, clip.size, resize)
    from pdedit.instructions import apply_edit

    return apply_edit(source(), edit.spec, edit_model=edit_model, seed=seed)


def _write_comparison(clip: pv.Clip, output: Path, compare: Path, engine: str, *, audio_from: str | None,
                      force: bool, progress: bool) -> Path:
    """Side by side: the source window as the edit saw it (written to a temporary file) and the edited output."""
    import tempfile

    from pdedit.compare import write_comparison

    with tempfile.TemporaryDirectory(dir=compare.parent, prefix=".pdedit-compare-") as tmp:
        source = pv.write_video(Path(tmp) / "source.mp4", clip, clip.fps, audio_from=audio_from,
                                audio_window=(clip.window.start, clip.window.end))
        return write_comparison([source, output], compare, labels=["source", f"edit ({engine})"], force=force,
                                progress=progress)


class _Tap:
    """Passes frames through while timing the engine and keeping a few evenly spaced ones for a preview."""

    def __init__(self, frames: Iterator[np.ndarray], total: int, keep: int):
        self.frames, self.total, self.seconds, self.count = frames, total, 0.0, 0
        self.keep_at = set(pv.even_indices(0, total - 1, min(keep, total)))
        self.kept: dict[int, np.ndarray] = {}

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            t0 = time.perf_counter()
            frame = next(self.frames, None)
            self.seconds += time.perf_counter() - t0
            if frame is None:
                if self.count != self.total:  # raised inside the stream, so the writer keeps no file
                    raise RuntimeError(f"the engine made {self.count} frames, {self.total} were expected")
                return
            if self.count in self.keep_at:
                self.kept[self.count] = frame
            self.count += 1
            yield frame


def edit_video(
    video: str | os.PathLike,
    first_edit: str | os.PathLike,
    last_edit: str | os.PathLike | None = None,
    output: str | os.PathLike = "edited.mp4",
    *,
    engine: str = "auto",
    model: str | os.PathLike | None = None,
    start: float | None = None,
    end: float | None = None,
    frames: int | None = None,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    resize: str = "crop",
    prompt: str = "",
    negative_prompt: str = "",
    tau: float = 1.0,
    strength: float = 1.0,
    steps: int = 25,
    guidance: float | None = None,
    seed: int = 0,
    image_noise: float = 0.0,
    instruction: str | None = None,
    edit_model: str | os.PathLike | None = None,
    audio: bool = True,
    crf: int = 18,
    preview: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
    keyframes: Mapping[int, str | os.PathLike] | None = None,
    keyframe_tau: Mapping[int, float] | None = None,
    offload: str | None = None,
    compare: str | os.PathLike | None = None,
) -> EditResult:
    """Edit a window of ``video`` from edited keyframes and write it to ``output``.

    Args:
        video: the source video file (never modified).
        first_edit: the edited first frame: an image path, or an edit spec (``auto:<name>[:k=v]``,
            ``instruct:<text>``, ``img2img:<text>``) applied to the window's first frame.
        last_edit: the edited last frame (same forms); None = basic mode (first frame only).
        output: the mp4 to write (atomically; an existing file only with ``force``).
        engine: "auto" (a model folder's kind, or propagate without a model), "propagate",
            "pixeldance", or another registered engine.
        model: a local model folder for the generative engines.
        start, end: the window in seconds (default: the whole video).
        frames: frames to make (propagate: default every frame of the window; generative: the model's
            clip length), sampled evenly over the window.
        fps: sample the window at this frame rate instead.
        size: (w, h) of the output (propagate: default the video's own size, made even; generative:
            longer side 512, multiples of 8).
        resize: how frames and edit images are fitted to ``size``: "crop", "pad" or "fit".
        prompt, negative_prompt, tau, strength, steps, guidance, seed, image_noise: generative-engine
            settings (see ``pdedit.engines.EditJob``); ``seed`` also seeds learned keyframe edits.
        instruction: turn the last edit into an instruction of this kind: image (none), sketch, pose,
            boxes or depth (for models tuned for them).
        edit_model: local model folder for ``instruct:``/``img2img:`` edit specs.
        audio: carry the window's audio from ``video``.
        crf: x264 quality of the output (18: visually lossless; lower is larger).
        preview: also write a PNG sheet of output frames here.
        force: replace existing ``output``/``preview`` files.
        progress: show progress bars on stderr.
        report: called once with a line saying which engine runs and why, after the inputs are checked.
        keyframes: more edited frames by position in the output clip (0 < index < frames - 1; the last
            position too when there is no last edit), each an image path or an edit spec; for engines that
            take K keyframes (ltx, propagate).
        keyframe_tau: per keyframe position (the last one's included), the fraction of the steps that see
            it [default: ``tau``]; for the ltx and wan engines.
        offload: none | model | sequential | auto, for the open-model engines (wan, ltx) [default: auto].
        compare: also write a labelled side-by-side mp4 of the source window and the edit here
            (``pdedit.compare.write_comparison``).

    Raises:
        BadInput, MissingModel, Unsupported: before anything is written, with a message naming the input.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    # 1. Check inputs, cheapest first, all before any heavy work.
    choice = choose(engine, model)
    name, reason, generative = choice.name, choice.why, choice.spec.needs_model
    if resize not in pv.RESIZE_POLICIES:
        raise BadInput(f"--resize {resize!r} is unknown: use one of {', '.join(pv.RESIZE_POLICIES)}")
    if not 0 <= crf <= 51:
        raise BadInput(f"--crf {crf} is outside 0..51 (x264 quality; 18 is visually lossless)")
    if instruction is not None and instruction not in INSTRUCTION_KINDS:
        raise BadInput(f"--instruction {instruction!r} is unknown: use one of {', '.join(INSTRUCTION_KINDS)}")
    converting = instruction not in (None, "image")
    if converting and last_edit is None:
        raise BadInput(f"--instruction {instruction} converts the last edit: give --last-edit too")
    if converting and not generative:
        raise BadInput(f"--instruction {instruction} makes a {instruction} last frame for a generative model tuned "
                       f"for it; the {name} engine carries image edits: drop --instruction or pass --model")
    choice.check_keyframes(keyframes)
    engine_options = choice.spec.check_options({"offload": offload})
    info = pv.probe(video)
    first = _read_edit(first_edit, "--first-edit")
    last = _read_edit(last_edit, "--last-edit") if last_edit is not None else None
    extra = {int(i): _read_edit(text, f"--keyframe {i}") for i, text in (keyframes or {}).items()}
    for edit, which in ((first, "--first-edit"), (last, "--last-edit"), *((e, f"--keyframe {i}") for i, e in extra.items())):
        if edit is not None:
            _check_aspect(edit, which, info)
    inputs = [video, first.path, last.path if last else None, *(e.path for e in extra.values())]
    pv.check_output(output, inputs=inputs, force=force)
    if preview is not None:
        if Path(preview).resolve() == Path(output).resolve():
            raise BadInput(f"--preview {preview} is the output video: give the sheet its own .png name")
        pv.check_output(preview, inputs=inputs, force=force)
    if compare is not None:
        if len({Path(p).resolve() for p in (output, compare, preview or output)}) < 2 + (preview is not None):
            raise BadInput(f"--compare {compare} is another output of this edit: give it its own .mp4 name")
        pv.check_output(compare, inputs=inputs, force=force)
    if size is None:
        size = pv.default_size(info.width, info.height) if generative else _even_size(info.width, info.height)
    if frames is None and fps is None:
        frames = choice.frames  # the model's clip length; None (propagate): every frame of the window
    clip = pv.Clip(info, pv.plan_window(info, start, end, frames, fps), size, resize)  # info is probed once
    window = clip.window
    for i in extra:
        if not 0 < i < len(clip) - (last is not None):
            raise BadInput(f"--keyframe {i}: the clip has {len(clip)} frames, so a keyframe index must be in "
                           f"1..{len(clip) - 1 - (last is not None)} (0 is --first-edit"
                           f"{', ' + str(len(clip) - 1) + ' is --last-edit' if last is not None else ''})")
    timings["prepare"] = time.perf_counter() - t_start
    if report is not None:
        report(f"{reason} ({len(clip)} frames at {clip.fps:g} fps, {clip.size[0]}x{clip.size[1]})")
    logger.info("edit %s -> %s: %s; %r", video, output, reason, clip)

    # 2. Keyframe instructions at the clip's size.
    t0 = time.perf_counter()
    first_frame = _keyframe(first, clip.first, clip, resize, edit_model=edit_model, seed=seed)
    last_frame = None
    if last is not None:
        last_frame = _keyframe(last, clip.last, clip, resize, edit_model=edit_model, seed=seed)
        if converting:
            from pdedit.instructions import convert

            last_frame = convert(last_frame, instruction)
    key_frames = {
        i: _keyframe(e, lambda i=i: clip.frame(i), clip, resize,
                     edit_model=edit_model, seed=seed)
        for i, e in sorted(extra.items())
    }
    timings["keyframes"] = time.perf_counter() - t0

    # 3. Render, streaming into the writer.
    job = choice.job(
        source=clip, first=first_frame, last=last_frame, num_frames=len(clip), fps=clip.fps, size=clip.size,
        prompt=prompt, negative_prompt=negative_prompt, tau=tau, strength=strength, steps=steps,
        guidance=guidance, seed=seed, image_noise=image_noise, keyframes=key_frames,
        keyframe_tau={int(i): float(t) for i, t in (keyframe_tau or {}).items()},
    )
    runner = choice.build(**engine_options)
    keep = PREVIEW_FRAMES if preview is not None else 0
    tap = _Tap(iter(runner.render(job, progress=progress)), len(clip), keep)
    carry_audio = bool(audio and info.has_audio)
    t0 = time.perf_counter()
    pv.write_video(
        output, tap, clip.fps, audio_from=video if carry_audio else None,
        audio_window=(window.start, window.end), crf=crf, force=force, inputs=inputs, progress=progress,
    )
    timings["render"] = tap.seconds
    timings["write"] = time.perf_counter() - t0 - tap.seconds

    # 4. Preview sheet.
    sheet = None
    if preview is not None:
        t0 = time.perf_counter()
        order = sorted(tap.kept)
        sheet = pv.preview_sheet([tap.kept[i] for i in order], preview, labels=order, max_frames=PREVIEW_FRAMES)
        timings["preview"] = time.perf_counter() - t0
    # 5. Side-by-side comparison: the source window (its own frames, resampled like the edit) and the edit.
    comparison = None
    if compare is not None:
        t0 = time.perf_counter()
        comparison = _write_comparison(clip, Path(output), Path(compare), name, force=force, progress=progress,
                                       audio_from=str(video) if carry_audio else None)
        timings["compare"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    return EditResult(
        output=Path(output), engine=name, reason=reason, frames=len(clip), fps=clip.fps, size=clip.size,
        seconds=len(clip) / clip.fps, start=window.start, end=window.end, audio=carry_audio, preview=sheet,
        comparison=comparison, timings=timings,
    )
