"""Video files in and out: probing, windows, resampling, resizing, writing, audio, preview sheets.

The one place that touches video files. Frames leave this module as ``numpy.uint8`` arrays
``(H, W, 3)`` RGB; sizes are ``(W, H)`` tuples.

Reading uses OpenCV and falls back to the ffmpeg binary that imageio-ffmpeg ships when OpenCV
cannot decode the whole stream (``tree.avi``: Cinepak with empty "repeat" packets, OpenCV returns
68 of 444 frames). Writing pipes raw RGB frames into that ffmpeg (H.264, yuv420p) and renames a
temporary file at the end, so an error or Ctrl-C never leaves a partial output.
"""

from __future__ import annotations

import logging
import math
import os
import re
import secrets
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

from pdedit.errors import BadInput

# OpenCV's FFmpeg backend prints decoder complaints to stderr (dozens of lines for a damaged file);
# pdedit reports problems itself, in one line. Read when the first VideoCapture opens.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

logger = logging.getLogger(__name__)

__all__ = [
    "VideoInfo", "probe", "parse_size", "default_size", "resize_frame", "aspect_mismatch",
    "Window", "even_indices", "plan_window", "iter_frames", "Clip", "open_clip", "write_video", "check_output",
    "atomic_path", "load_image", "save_image", "preview_sheet", "make_sample", "ffmpeg_exe", "to_uint8",
    "VIDEO_SUFFIXES",
]

RESIZE_POLICIES = ("crop", "pad", "fit")
# File names taken for videos (a folder of training clips, a video given where an image may be).
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
# Seeking costs about one GOP of decoding; below this gap, decoding straight on is cheaper.
SEEK_GAP = 48


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg (built with libx264)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg(args: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ffmpeg quietly with ``args``; returns the finished process with stderr as text."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", **kwargs)


# ---- probing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. ``duration`` is ``frame_count / fps``, the timeline windows use.

    ``decoder`` is "opencv" or "ffmpeg": the reader that returns every frame of this file.
    """

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    has_audio: bool
    video_codec: str
    audio_codec: str | None
    decoder: str = "opencv"


@dataclass(frozen=True)
class _Header:
    """The facts `ffmpeg -i` prints about a file's first video and audio streams."""

    video_codec: str | None
    audio_codec: str | None
    width: int
    height: int
    fps: float
    error: str


def _read_header(path: Path) -> _Header:
    """Parse `ffmpeg -i` (there is no ffprobe in imageio-ffmpeg): codecs, size, fps, audio."""
    text = _ffmpeg(["-i", str(path)]).stderr
    video = audio = None
    width = height = 0
    fps = 0.0
    for line in text.splitlines():
        m = re.search(r"Stream #\d+:\d+.*?: (Video|Audio): (\w+)", line)
        if not m:
            continue
        if m.group(1) == "Audio" and audio is None:
            audio = m.group(2)
        elif m.group(1) == "Video" and video is None and "attached pic" not in line:
            video = m.group(2)
            if size := re.search(r", (\d+)x(\d+)", line):
                width, height = int(size.group(1)), int(size.group(2))
            if rate := re.search(r"([\d.]+) (?:fps|tbr)", line):
                fps = float(rate.group(1))
    last = [ln.strip() for ln in text.splitlines() if ln.strip()]
    error = next((ln for ln in reversed(last) if re.search("invalid data|moov atom|error", ln, re.I)), "")
    return _Header(video, audio, width, height, fps, error)


def _snap_fps(fps: float) -> float:
    """Snap rates such as 14.999925 (an AVI's rounding) to 15 or 30000/1001; keep others as they are."""
    for base in (round(fps), round(fps * 1.001) * 1000 / 1001):
        if base > 0 and abs(fps - base) / base < 1e-4:
            return float(base)
    return fps


def _opencv_can_read(cap: cv2.VideoCapture, index: int) -> bool:
    """Whether OpenCV returns frame ``index``: the cheap test that its frame count is real."""
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, _ = cap.read()
    # A truncated mp4 "succeeds" with a frame from near the start; the position tells.
    return bool(ok) and int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == index + 1


# ffmpeg's words for a file that stops in the middle of the video data.
_TRUNCATION_SIGNS = ("partial file", "ends prematurely", "truncat", "Invalid NAL", "error while decoding")


def _ffmpeg_count(path: Path) -> int:
    """Count the video packets with a stream copy (no decoding); BadInput when the file is cut short."""
    proc = _ffmpeg(["-nostats", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"])
    counts = re.findall(r"frame=\s*(\d+)", proc.stderr)
    if proc.returncode != 0 or not counts:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BadInput(f"video {path} cannot be decoded ({last}): it may be damaged; re-encode or replace it")
    if any(sign.lower() in proc.stderr.lower() for sign in _TRUNCATION_SIGNS):
        raise BadInput(f"video {path} is truncated (the file stops inside the video data): use the complete file")
    return int(counts[-1])


def probe(path: str | os.PathLike) -> VideoInfo:
    """Open ``path`` and report size, fps, true frame count, duration, codecs and audio.

    The frame count comes from OpenCV when it can read the last frame it announces; otherwise from
    ffmpeg, which then also decodes the file. Raises BadInput for a missing file, a folder, an empty
    file, a file that is not a video, a truncated video, and a video of fewer than 2 frames.
    """
    path = Path(path)
    _check_input_file(path, "video")
    header = _read_header(path)
    if header.video_codec is None:
        reason = f" ({header.error})" if header.error else ""
        raise BadInput(f"{path} is not a readable video{reason}: it may be truncated, damaged or another kind "
                       "of file; give a complete mp4, mkv, avi, mov or webm")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        opened = cap.isOpened()
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if opened else 0
        fps = cap.get(cv2.CAP_PROP_FPS) if opened else 0.0
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) if opened else header.width
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) if opened else header.height
        decoder = "opencv"
        if count < 1 or not _opencv_can_read(cap, count - 1):
            announced = count
            count, decoder = _ffmpeg_count(path), "ffmpeg"
            logger.info("%s: OpenCV announces %d frames but cannot read them all; ffmpeg counts %d",
                        path, announced, count)
    finally:
        cap.release()
    fps = _snap_fps(fps if fps > 0 else header.fps)
    if fps <= 0 or width <= 0 or height <= 0:
        raise BadInput(f"{path} has no usable frame rate or size: re-encode it, "
                       "e.g. with ffmpeg -i IN -c:v libx264 OUT.mp4")
    if count < 2:
        raise BadInput(f"video {path} has {count} frame(s); pdedit needs at least 2 "
                       "(for a still image, make a clip first)")
    return VideoInfo(path, width, height, fps, count, count / fps, header.audio_codec is not None,
                     header.video_codec, header.audio_codec, decoder)


def _check_input_file(path: Path, what: str) -> None:
    """BadInput unless ``path`` is an existing, non-empty regular file."""
    if not path.exists():
        raise BadInput(f"{what} {path} does not exist: check the path")
    if path.is_dir():
        raise BadInput(f"{what} {path} is a folder: give a file inside it")
    if path.stat().st_size == 0:
        raise BadInput(f"{what} {path} is empty (0 bytes): give the complete file")


# ---- sizes and resizing ------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    """Parse "WxH" into ``(w, h)``; BadInput unless both are positive multiples of 8."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m:
        raise BadInput(f"size {text!r} is not WxH: write it like 512x320")
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0 or w % 8 or h % 8:
        near = f"{max(8, round(w / 8) * 8)}x{max(8, round(h / 8) * 8)}"
        raise BadInput(f"size {text!r} must be positive multiples of 8 (the model's latent grid): try {near}")
    return w, h


def default_size(width: int, height: int, max_side: int = 512) -> tuple[int, int]:
    """Scale ``(width, height)`` so the longer side is ``max_side``, keeping aspect, multiples of 8."""
    scale = max_side / max(width, height)
    return max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8)


def aspect_mismatch(src_wh: tuple[int, int], dst_wh: tuple[int, int]) -> float:
    """Relative aspect difference, symmetric: 0.0 when equal, 0.78 for 16:9 against 1:1."""
    a, b = src_wh[0] / src_wh[1], dst_wh[0] / dst_wh[1]
    return max(a, b) / min(a, b) - 1.0


def _scaled(frame: np.ndarray, w: int, h: int) -> np.ndarray:
    """Resize to exactly ``w x h``: area averaging to shrink (no aliasing), cubic to enlarge."""
    if (frame.shape[1], frame.shape[0]) == (w, h):
        return frame
    shrink = w * h < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def to_uint8(frames: object) -> list[np.ndarray]:
    """uint8 (H, W, 3) frames from one video as a pipeline returns it: float (F, H, W, 3) or (1, F, H, W, 3) in [0, 1], or PIL images."""
    if isinstance(frames, list) and frames and isinstance(frames[0], list):
        frames = frames[0] if len(frames) == 1 else None
        if frames is None:
            raise ValueError("to_uint8 takes one video; index the batch first")
    if isinstance(frames, list) and frames and hasattr(frames[0], "convert"):  # PIL images
        return [np.asarray(f.convert("RGB")) for f in frames]
    arr = np.asarray(frames)
    if arr.ndim == 5:
        if arr.shape[0] != 1:
            raise ValueError(f"to_uint8 takes one video; got a batch of {arr.shape[0]}: index it first")
        arr = arr[0]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected (F, H, W, 3) frames, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return list(arr)
    return list((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def resize_frame(frame: np.ndarray, size: tuple[int, int], policy: str = "crop") -> np.ndarray:
    """Resize an RGB frame to ``size`` (w, h).

    Args:
        frame: uint8 ``(H, W, 3)``.
        size: target ``(w, h)``.
        policy: "crop" covers the target then centre-crops; "pad" fits inside it with black
            bars; "fit" stretches to exactly the target (aspect changes).
    """
    w, h = size
    fh, fw = frame.shape[:2]
    if (fw, fh) == (w, h):
        return frame
    if policy == "fit":
        return _scaled(frame, w, h)
    if policy == "crop":
        scale = max(w / fw, h / fh)
        sw, sh = max(w, math.ceil(fw * scale - 1e-6)), max(h, math.ceil(fh * scale - 1e-6))
        big = _scaled(frame, sw, sh)
        x, y = (sw - w) // 2, (sh - h) // 2
        return np.ascontiguousarray(big[y:y + h, x:x + w])
    if policy == "pad":
        scale = min(w / fw, h / fh)
        sw, sh = min(w, max(1, round(fw * scale))), min(h, max(1, round(fh * scale)))
        out = np.zeros((h, w, 3), np.uint8)
        x, y = (w - sw) // 2, (h - sh) // 2
        out[y:y + sh, x:x + sw] = _scaled(frame, sw, sh)
        return out
    raise BadInput(f"resize policy {policy!r} is unknown: use one of {', '.join(RESIZE_POLICIES)}")


# ---- windows: THE definition of frame sampling ---------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Source frames chosen for a clip: ``indices`` (may repeat when upsampling) played at ``fps``.

    ``start``/``end`` are the seconds of the source the clip covers (the audio to carry).
    """

    start: float
    end: float
    indices: tuple[int, ...]
    fps: float


def even_indices(first: int, last: int, count: int) -> tuple[int, ...]:
    """``count`` indices spread evenly from ``first`` to ``last`` inclusive (rounded; repeats when too few)."""
    if count <= 0:
        return ()
    return tuple(int(i) for i in np.round(np.linspace(first, last, count)))


def plan_window(info: VideoInfo, start: float | None = None, end: float | None = None,
                num_frames: int | None = None, fps: float | None = None) -> Window:
    """Choose the source frames of a window: N evenly spaced, or at a target fps, or all of them.

    Args:
        info: the probed video.
        start, end: window in seconds (default: the whole video). Frame i shows at i / info.fps.
        num_frames: how many frames; alone, they are spread evenly from the first to the last
            frame of the window (repeating frames when the window holds fewer).
        fps: target frame rate; alone, every frame time of the window at that rate. With
            ``num_frames`` too, N frames at that rate from ``start`` (BadInput if they overrun).
    """
    src, name = info.fps, info.path.name
    start = 0.0 if start is None else float(start)
    end = info.duration if end is None else float(end)
    if start < 0:
        raise BadInput(f"--start {start:g} is negative: give seconds from the beginning of {name}")
    if start >= info.duration:
        raise BadInput(f"--start {start:g} s is past the end of {name} ({info.duration:.2f} s): start earlier")
    if end <= start:
        raise BadInput(f"--start {start:g} s must be before --end {end:g} s")
    if end > info.duration + 0.5 / src:
        raise BadInput(f"--end {end:g} s is past the end of {name} ({info.duration:.2f} s): "
                       f"pass --end {info.duration:.2f} or less")
    if num_frames is not None and num_frames < 2:
        raise BadInput(f"{num_frames} frame(s) requested: a clip needs at least 2")
    if fps is not None and not fps > 0:
        raise BadInput(f"--fps {fps:g} must be positive")
    first = max(0, math.ceil(start * src - 1e-6))
    stop = min(info.frame_count, math.ceil(min(end, info.duration) * src - 1e-6))
    available = stop - first
    if available < 2:
        raise BadInput(f"window {start:g}-{end:g} s of {name} holds {max(available, 0)} frame(s) at {src:g} fps; "
                       "at least 2 are needed: widen the window")
    if fps is None and num_frames is None:
        indices, out_fps = tuple(range(first, stop)), src
    elif fps is None:
        indices = even_indices(first, stop - 1, num_frames)
        out_fps = num_frames * src / available  # the clip lasts as long as the window it shows
    else:
        fit = math.ceil(available * fps / src - 1e-6)  # frame times k / fps inside the window
        n = fit if num_frames is None else num_frames
        if n > fit:
            raise BadInput(f"{n} frames at {fps:g} fps need {n / fps:.2f} s but the window of {name} is "
                           f"{available / src:.2f} s: ask for fewer frames, a higher --fps or a wider window")
        if n < 2:
            raise BadInput(f"at {fps:g} fps the {available / src:.2f} s window of {name} gives {n} frame: raise --fps")
        indices = tuple(first + math.floor(k * src / fps + 1e-6) for k in range(n))
        out_fps = fps
    return Window(first / src, first / src + len(indices) / out_fps, indices, out_fps)


# ---- decoding ---------------------------------------------------------------------------------


def _check_indices(indices: Sequence[int], count: int) -> None:
    """Indices must be non-decreasing and inside the video: decoding streams forward."""
    if any(b < a for a, b in zip(indices, indices[1:])):
        raise ValueError("frame indices must be non-decreasing (decoding streams forward)")
    if indices and (indices[0] < 0 or indices[-1] >= count):
        raise ValueError(f"frame indices {indices[0]}..{indices[-1]} fall outside 0..{count - 1}")


def _opencv_frames(info: VideoInfo, indices: Sequence[int]) -> Iterator[np.ndarray]:
    """Decode ``indices`` with OpenCV, seeking over long gaps; ffmpeg takes over if OpenCV stops early."""
    cap = cv2.VideoCapture(str(info.path), cv2.CAP_FFMPEG)
    pos, last_index, last = 0, -1, None  # pos: index of the frame read() returns next
    try:
        for k, index in enumerate(indices):
            if index != last_index:
                if index - pos > SEEK_GAP:
                    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                    pos = index
                ok = True
                while ok and pos < index:
                    ok, pos = cap.grab(), pos + 1
                ok, bgr = cap.read() if ok else (False, None)
                if not ok:
                    logger.warning("%s: OpenCV stopped at frame %d of %d; decoding the rest with ffmpeg",
                                   info.path, index, info.frame_count)
                    yield from _ffmpeg_frames(info, indices[k:])
                    return
                pos, last_index, last = pos + 1, index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield last
            else:
                yield last.copy()
    finally:
        cap.release()


def _ffmpeg_frames(info: VideoInfo, indices: Sequence[int]) -> Iterator[np.ndarray]:
    """Decode ``indices`` through an ffmpeg rawvideo pipe, one frame in memory at a time.

    The fps filter lays frames on the stream's own constant-rate timeline, so "repeat previous"
    packets (empty in Cinepak AVIs) become the frames they stand for.
    """
    if not indices:
        return
    w, h = info.width, info.height
    args = ["-loglevel", "error", "-i", str(info.path), "-map", "0:v:0", "-vf", "fps=fps=source_fps",
            "-frames:v", str(indices[-1] + 1), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    proc = subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-nostdin", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        pos, wanted = 0, iter(indices)
        index = next(wanted)
        while index is not None:  # ffmpeg decodes every frame; keep the wanted ones
            frame = np.empty((h, w, 3), np.uint8)
            if not _read_exact(proc.stdout, memoryview(frame).cast("B")):
                raise BadInput(f"video {info.path} ends early: frame {pos} of {info.frame_count} could not be "
                               "decoded; the file may be truncated or damaged: use the complete file")
            while index == pos:
                yield frame
                index = next(wanted, None)
                frame = frame.copy() if index == pos else frame  # a repeat gets its own array
            pos += 1
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _read_exact(stream, view: memoryview) -> bool:
    """Fill ``view`` from ``stream``; False when the stream ends first."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            return False
        got += n
    return True


def _decode(info: VideoInfo, indices: Sequence[int] | None) -> Iterator[np.ndarray]:
    """Stream the frames at ``indices`` (all when None) with the reader ``info`` names."""
    indices = range(info.frame_count) if indices is None else list(indices)
    _check_indices(indices, info.frame_count)
    reader = _ffmpeg_frames if info.decoder == "ffmpeg" else _opencv_frames
    return reader(info, indices)


def iter_frames(path: str | os.PathLike, indices: Sequence[int] | None = None) -> Iterator[np.ndarray]:
    """Stream RGB frames of ``path`` (all, or the non-decreasing ``indices``); memory does not grow with length."""
    return _decode(probe(path), indices)


class Clip:
    """A re-iterable window of a video file at a given size; every iteration decodes again (streaming)."""

    def __init__(self, info: VideoInfo, window: Window, size: tuple[int, int], resize: str = "crop"):
        if resize not in RESIZE_POLICIES:
            raise BadInput(f"resize policy {resize!r} is unknown: use one of {', '.join(RESIZE_POLICIES)}")
        self.info, self.window, self.size, self.resize = info, window, tuple(size), resize
        self.fps = window.fps

    def __len__(self) -> int:
        return len(self.window.indices)

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in _decode(self.info, self.window.indices):
            yield resize_frame(frame, self.size, self.resize)

    def frame(self, position: int) -> np.ndarray:
        """Decode the clip's frame at ``position`` (0..len-1) alone, at the clip's size."""
        index = self.window.indices[position]
        return resize_frame(next(_decode(self.info, [index])), self.size, self.resize)

    def first(self) -> np.ndarray:
        """The clip's first frame at the clip's size."""
        return self.frame(0)

    def last(self) -> np.ndarray:
        """The clip's last frame at the clip's size."""
        return self.frame(-1)

    def frames(self) -> list[np.ndarray]:
        """All frames in a list (loads the whole clip into memory)."""
        return list(self)

    def __repr__(self) -> str:
        w = self.window
        return (f"Clip({self.info.path.name}, {w.start:.2f}-{w.end:.2f} s, {len(self)} frames at {self.fps:g} fps, "
                f"{self.size[0]}x{self.size[1]} {self.resize})")


def open_clip(path: str | os.PathLike, start: float | None = None, end: float | None = None,
              num_frames: int | None = None, fps: float | None = None, size: tuple[int, int] | None = None,
              resize: str = "crop") -> Clip:
    """Probe ``path`` and plan a window (see `plan_window`) delivered at ``size``.

    ``size`` defaults to `default_size` of the video (longer side 512, multiples of 8);
    ``resize`` is the policy of `resize_frame`.
    """
    info = probe(path)
    window = plan_window(info, start, end, num_frames, fps)
    return Clip(info, window, size or default_size(info.width, info.height), resize)


# ---- writing ----------------------------------------------------------------------------------


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success, delete it on any error."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # normal permissions, unlike mkstemp
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C too: never leave a partial file behind
        tmp.unlink(missing_ok=True)
        raise


def check_output(path: str | os.PathLike, *, inputs: Iterable = (), force: bool = False) -> None:
    """BadInput if ``path`` is one of ``inputs``, its folder is missing or unwritable, or it exists without ``force``."""
    path = Path(path)
    target = path.resolve()
    for source in inputs:
        if source is not None and (target == Path(source).resolve() or
                                   (path.exists() and Path(source).exists() and os.path.samefile(path, source))):
            raise BadInput(f"output {path} is the input {source}: write to another file (inputs are never overwritten)")
    folder = target.parent
    if not folder.exists():
        raise BadInput(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise BadInput(f"cannot write {path}: {folder} is a file, not a folder; choose another output path")
    if path.is_dir():
        raise BadInput(f"output {path} is a folder: give a file name inside it")
    if path.exists() and not force:
        raise BadInput(f"output {path} already exists: pass --force to replace it")
    try:  # root ignores permission bits, so try it rather than trust os.access
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise BadInput(f"cannot write to folder {folder} ({err.strerror}): choose a writable folder") from None


def _encode(path: Path, frames: Iterator[np.ndarray], size: tuple[int, int], fps: float, crf: int,
            bar) -> int:
    """Pipe RGB frames of ``size`` into libx264 (yuv420p) writing mp4 ``path``; returns the frame count."""
    w, h = size
    even = f"crop={w - w % 2}:{h - h % 2}:0:0"  # yuv420p needs even sides: drop an odd last row/column
    rate = Fraction(fps).limit_denominator(100000)
    args = ["-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
            "-framerate", str(rate), "-i", "-", "-an", "-vf", even, "-c:v", "libx264", "-preset", "medium",
            "-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(path)]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-nostdin", *args],
                                stdin=subprocess.PIPE, stderr=errors)
        count = 0
        try:
            for frame in frames:
                if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
                    raise ValueError(f"frame {count} is {frame.dtype} {frame.shape}; expected uint8 {(h, w, 3)}")
                proc.stdin.write(np.ascontiguousarray(frame).data)
                count += 1
                bar.update(1)
            proc.stdin.close()
            if proc.wait() != 0:
                errors.seek(0)
                raise RuntimeError(f"ffmpeg failed writing {path}: {errors.read().decode(errors='replace').strip()}")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return count


# Audio codecs that mp4 players handle: these are stream-copied; others (PCM, Vorbis...) become AAC.
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}


def _mux_audio(video: Path, source: Path, codec: str, window: tuple[float, float] | None, out: Path) -> None:
    """Add the audio of ``source`` (for ``window`` seconds) to ``video``: stream copy, AAC if mp4 cannot hold it."""
    cut = ["-ss", f"{window[0]:.6f}", "-to", f"{window[1]:.6f}"] if window else []
    aac = ["-c:a", "aac", "-b:a", "192k"]
    for audio_codec in ([["-c:a", "copy"], aac] if codec in MP4_AUDIO else [aac]):
        proc = _ffmpeg(["-y", "-loglevel", "error", "-i", str(video), *cut, "-i", str(source),
                        "-map", "0:v:0", "-map", "1:a:0?", "-c:v", "copy", *audio_codec, "-shortest",
                        "-f", "mp4", str(out)])
        if proc.returncode == 0:
            return
        logger.info("audio of %s: %s failed (%s)", source, audio_codec[1], proc.stderr.strip()[-200:])
    raise BadInput(f"the audio of {source} could not be carried into {out.name}: write without audio")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, *,
                audio_from: str | os.PathLike | None = None, audio_window: tuple[float, float] | None = None,
                crf: int = 18, force: bool = False, inputs: Iterable = (), progress: bool = False) -> Path:
    """Write RGB frames as an H.264 (yuv420p) mp4, streaming, atomically.

    Args:
        path: output .mp4; checked by `check_output` before any frame is consumed.
        frames: uint8 ``(H, W, 3)`` frames, all the same size (an odd side loses its last row/column).
        fps: playback rate.
        audio_from: a video whose audio to carry (lossless stream copy when mp4 can hold it).
        audio_window: ``(start, end)`` seconds of that audio; None takes it from the beginning.
        crf: x264 quality (18 is visually lossless; lower is larger).
        force: replace an existing ``path``.
        inputs: paths ``path`` must not equal (the source video, edit images).
        progress: show a tqdm bar on stderr.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    check_output(path, inputs=[*inputs, audio_from], force=force)
    if not fps > 0:
        raise BadInput(f"fps {fps} must be positive")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise BadInput(f"no frames to write to {path}")
    size = (first.shape[1], first.shape[0])
    audio = None
    if audio_from is not None:
        header = _read_header(Path(audio_from))
        audio, audio_codec = (Path(audio_from) if header.audio_codec else None), header.audio_codec
        if audio is None:
            logger.info("%s has no audio track; writing %s without audio", audio_from, path)
    with atomic_path(path) as tmp, tqdm(desc=f"writing {path.name}", unit="frame", disable=not progress) as bar:
        if audio is None:
            _encode(tmp, chain([first], frames), size, fps, crf, bar)
        else:
            video_only = tmp.with_name(tmp.name + ".video.mp4")
            try:
                _encode(video_only, chain([first], frames), size, fps, crf, bar)
                _mux_audio(video_only, audio, audio_codec, audio_window, tmp)
            finally:
                video_only.unlink(missing_ok=True)
    return path


# ---- images and preview sheets ----------------------------------------------------------------


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 ``(H, W, 3)``; BadInput when missing or unreadable."""
    path = Path(path)
    _check_input_file(path, "image")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BadInput(f"image {path} cannot be read: give a PNG or JPEG file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def save_image(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Write an RGB frame to ``path`` (format from the suffix, PNG when none), atomically."""
    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if not ok:
        raise BadInput(f"cannot encode an image as {path.suffix!r}: save as .png or .jpg")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path


def preview_sheet(frames: Sequence[np.ndarray], path: str | os.PathLike, columns: int | None = None,
                  labels: Sequence | None = None, max_frames: int = 16) -> Path:
    """Write a PNG grid of frames, each labelled (by default with its position in ``frames``).

    More than ``max_frames`` frames are thinned to that many, evenly spaced, keeping first and last.
    """
    frames = list(frames)
    if not frames:
        raise BadInput(f"no frames for the preview sheet {path}")
    labels = [str(i) for i in range(len(frames))] if labels is None else [str(x) for x in labels]
    if len(frames) > max_frames:
        keep = even_indices(0, len(frames) - 1, max_frames)
        frames, labels = [frames[i] for i in keep], [labels[i] for i in keep]
    columns = columns or math.ceil(math.sqrt(len(frames)))
    rows = math.ceil(len(frames) / columns)
    th, tw = frames[0].shape[:2]
    scale = min(1.0, 256 / max(th, tw))  # thumbnails at most 256 px: a sheet stays a glance
    tw, th = max(1, round(tw * scale)), max(1, round(th * scale))
    gap = 4
    sheet = np.full((rows * (th + gap) + gap, columns * (tw + gap) + gap, 3), 32, np.uint8)
    for k, (frame, label) in enumerate(zip(frames, labels)):
        tile = resize_frame(frame, (tw, th), "pad").copy()
        cv2.rectangle(tile, (0, 0), (8 + 9 * len(label), 18), (0, 0, 0), -1)
        cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        y, x = gap + (k // columns) * (th + gap), gap + (k % columns) * (tw + gap)
        sheet[y:y + th, x:x + tw] = tile
    return save_image(Path(path), sheet)


def make_sample(path: str | os.PathLike, seconds: float = 2.0, fps: float = 12, size: tuple[int, int] = (320, 240),
                *, force: bool = False) -> Path:
    """Write a short clip with no input needed: a slow pan and zoom over scikit-image's astronaut photo."""
    from skimage import data

    if not seconds > 0 or not fps > 0:
        raise BadInput(f"--seconds {seconds:g} and --fps {fps:g} must be positive")
    n = round(seconds * fps)
    if n < 2:
        raise BadInput(f"{seconds:g} s at {fps:g} fps is {n} frame(s): make the clip at least 2 frames long")
    photo = data.astronaut()  # (512, 512, 3) RGB, ships inside scikit-image
    w, h = size
    ph, pw = photo.shape[:2]
    base = min(pw / w, ph / h)  # source pixels per output pixel when the view is widest

    def frame(t: float) -> np.ndarray:
        """The view at time t in [0, 1]: eased zoom from 100% to 70% while the centre drifts."""
        e = 0.5 - 0.5 * math.cos(math.pi * t)  # ease in and out: a camera, not a slideshow
        s = base * (1.0 - 0.3 * e)
        # the view (s*w by s*h) stays inside the photo and drifts up and left, towards the face
        cx = s * w / 2 + (pw - s * w) * (0.5 - 0.1 * e)
        cy = s * h / 2 + (ph - s * h) * (0.5 - 0.35 * e)
        # output pixel (x, y) samples the photo at (cx + s*(x - w/2), cy + s*(y - h/2))
        m = np.array([[s, 0, cx - s * w / 2], [0, s, cy - s * h / 2]], np.float64)
        return cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)

    return write_video(path, (frame(i / (n - 1)) for i in range(n)), fps, force=force)
