"""A labelled side-by-side (or grid) video of a source and its edits: what people post to show an edit.

moviepy does the composition: each video is opened as a clip, scaled to the first one's height,
labelled with a text caption, laid out in a grid (``clips_array``) and sampled on the first video's
time line, so frame ``t`` of every tile shows the same moment (a shorter video holds its last
frame). The frames stream into ``pdedit.video.write_video``, the project's one writer: H.264, written
atomically, with the first video's audio carried losslessly.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from pdedit.errors import BadInput

__all__ = ["write_comparison", "grid_shape"]

logger = logging.getLogger(__name__)

LABEL_HEIGHT = 0.08  # caption text height as a share of the tile height
MAX_COLUMNS = 3  # up to three videos side by side; more make a grid


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) for ``count`` tiles: one row up to MAX_COLUMNS, else the squarest grid."""
    if count <= MAX_COLUMNS:
        return 1, count
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def _labelled(clip, label: str, height: int):
    """The clip scaled to ``height`` with ``label`` in a dark band at its top left."""
    from moviepy import CompositeVideoClip, TextClip

    clip = clip.resized(height=height) if clip.h != height else clip
    size = max(10, round(LABEL_HEIGHT * height))
    text = TextClip(text=label, font_size=size, color="white", bg_color="black", margin=(size // 3, size // 2))
    text = text.with_duration(clip.duration).with_position((0, 0))
    return CompositeVideoClip([clip, text], size=clip.size).with_duration(clip.duration)


def write_comparison(videos: Sequence[str | os.PathLike], output: str | os.PathLike,
                     labels: Sequence[str] | None = None, force: bool = False, progress: bool = False) -> Path:
    """Write a labelled side-by-side (grid for more than three) mp4 of ``videos``, time-aligned to the first.

    Args:
        videos: two or more video files; the first (usually the source) sets the duration, fps, tile
            height and audio.
        output: the mp4 to write (atomically; an existing file only with ``force``; never one of ``videos``).
        labels: one caption per video [default: the file names without their extension].
        force: replace an existing ``output``.
        progress: show a progress bar on stderr.

    Raises:
        BadInput: fewer than two videos, a missing or unreadable one, labels that do not match, or an
            output that may not be written; all before anything is written.
    """
    from moviepy import ColorClip, VideoFileClip, clips_array

    from pdedit.video import check_output, probe, write_video

    # 1. Check everything before the work.
    paths = [Path(v) for v in videos]
    if len(paths) < 2:
        raise BadInput(f"a comparison needs at least two videos, got {len(paths)}: e.g. the source and its edit")
    infos = [probe(p) for p in paths]  # BadInput naming a missing or unreadable video
    labels = [p.stem for p in paths] if labels is None else [str(x) for x in labels]
    if len(labels) != len(paths):
        raise BadInput(f"{len(labels)} labels for {len(paths)} videos: give one --label per video, or none")
    check_output(output, inputs=paths, force=force)

    # 2. Compose: tiles at the first video's height, on its time line.
    first = infos[0]
    height = first.height - first.height % 2
    duration = first.duration
    clips = [VideoFileClip(str(p), audio=False) for p in paths]
    try:
        tiles = []
        for clip, label in zip(clips, labels):
            if clip.duration < duration:  # hold the last frame: the time line is the first video's
                last = clip.to_ImageClip(t=max(0.0, clip.duration - 1.0 / max(clip.fps, 1.0)))
                clip = _concat(clip, last.with_duration(duration - clip.duration))
            tiles.append(_labelled(clip.with_duration(duration), label, height))
        rows, columns = grid_shape(len(tiles))
        width = max(t.w for t in tiles)
        blank = ColorClip((width, height), color=(0, 0, 0)).with_duration(duration)
        cells = tiles + [blank] * (rows * columns - len(tiles))
        grid = clips_array([cells[r * columns:(r + 1) * columns] for r in range(rows)], bg_color=(0, 0, 0))
        frames = grid.iter_frames(fps=first.fps, dtype="uint8", logger=None)
        count = max(1, round(duration * first.fps))
        logger.info("comparing %d videos in %dx%d tiles: %d frames", len(paths), rows, columns, count)
        # 3. Write with the first video's audio.
        return write_video(output, _take(frames, count), first.fps, audio_from=paths[0] if first.has_audio else None,
                           audio_window=(0.0, duration), force=force, inputs=paths, progress=progress)
    finally:
        for clip in clips:
            clip.close()


def _concat(clip, tail):
    """``clip`` followed by ``tail``."""
    from moviepy import concatenate_videoclips

    return concatenate_videoclips([clip, tail])


def _take(frames, count: int):
    """At most ``count`` frames (moviepy's sampling can run one frame past the end)."""
    for i, frame in enumerate(frames):
        if i >= count:
            return
        yield frame
