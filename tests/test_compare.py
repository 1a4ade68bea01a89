"""`pdedit compare` and `pdedit edit --compare`: labelled, time-aligned side-by-side videos (moviepy)."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import assert_refused, run, snapshot

from pdedit.compare import grid_shape, write_comparison
from pdedit.video import make_sample, open_clip, probe, write_video


def _frames(path) -> list[np.ndarray]:
    """Every frame of ``path`` at its own size."""
    info = probe(path)
    return open_clip(path, size=(info.width, info.height)).frames()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 2 s 64x48 clip and a 1 s solid-red 32x48 'edit' of another aspect."""
    folder = tmp_path_factory.mktemp("compare")
    source = make_sample(folder / "source.mp4", seconds=2.0, fps=6, size=(64, 48))
    red = np.zeros((48, 32, 3), np.uint8)
    red[..., 0] = 255
    edit = write_video(folder / "edit.mp4", [red] * 6, 6.0)
    return source, edit


def test_grid_is_one_row_up_to_three_then_square():
    assert [grid_shape(n) for n in (2, 3, 4, 5, 9)] == [(1, 2), (1, 3), (2, 2), (2, 3), (3, 3)]


def test_comparison_puts_the_videos_side_by_side_on_the_first_ones_time_line(clips, tmp_path):
    source, edit = clips
    out = write_comparison([source, edit], tmp_path / "side.mp4", labels=["source", "edit"])
    info, src = probe(out), probe(source)
    assert (info.width, info.height, info.fps, info.frame_count) == (64 + 32, 48, src.fps, src.frame_count)
    frames = _frames(out)
    right = frames[-1][30:, 70:90].astype(int)  # below the label, inside the red tile: held past its 1 s
    assert right[..., 0].mean() > 200 and right[..., 1:].mean() < 40
    left = frames[-1][30:, :60].astype(int)
    expected = _frames(source)[-1][30:, :60].astype(int)
    assert np.abs(left - expected).mean() < 12  # the source tile is the source at the same moment


def test_comparison_labels_mark_the_tiles(clips, tmp_path):
    source, edit = clips
    plain = _frames(write_comparison([source, source], tmp_path / "a.mp4", labels=[" ", " "]))[0]
    labelled = _frames(write_comparison([source, source], tmp_path / "b.mp4", labels=["AAAA", "BBBB"]))[0]
    corner = (slice(0, 8), slice(0, 20))
    assert np.abs(plain[corner].astype(int) - labelled[corner].astype(int)).mean() > 20


def test_compare_refuses_one_video_or_mismatched_labels_with_exit_2_and_no_output(clips, tmp_path):
    source, edit = clips
    before = snapshot(tmp_path)
    assert_refused(run("compare", source, "-o", tmp_path / "c.mp4"), before, tmp_path, "at least two")
    assert_refused(run("compare", source, edit, "--label", "x", "-o", tmp_path / "c.mp4"), before, tmp_path,
                   "1 labels for 2 videos")
    assert_refused(run("compare", source, edit, "-o", source), before, tmp_path, "is the input")


def test_edit_compare_writes_the_source_window_beside_the_edit(clips, tmp_path):
    source, _ = clips
    out, side = tmp_path / "sepia.mp4", tmp_path / "side.mp4"
    result = run("edit", source, "--first-edit", "auto:sepia", "--last-edit", "auto:sepia", "-o", out,
                 "--compare", side, "--end", 1.0)
    assert result.exit_code == 0, result.output
    info, edited = probe(side), probe(out)
    assert (info.width, info.height, info.frame_count) == (2 * edited.width, edited.height, edited.frame_count)
    frame = _frames(side)[-1].astype(int)
    left, right = frame[30:, : edited.width], frame[30:, edited.width:]
    assert np.abs(right - _frames(out)[-1][30:].astype(int)).mean() < 12
    assert np.abs(left - right).mean() > 5  # the source is not sepia
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_edit_compare_on_the_output_path_is_refused(clips, tmp_path):
    source, _ = clips
    before = snapshot(tmp_path)
    result = run("edit", source, "--first-edit", "auto:sepia", "-o", tmp_path / "o.mp4", "--compare",
                 tmp_path / "o.mp4")
    assert_refused(result, before, tmp_path, "--compare")
