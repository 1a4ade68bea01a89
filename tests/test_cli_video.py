"""`pdedit sample`, `pdedit info`, `pdedit frames`: results, help examples, and refusals of bad input."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_refused, run, snapshot
from pdedit.video import iter_frames, load_image, probe, write_video


@pytest.fixture
def clip(tmp_path, sample_clip) -> Path:
    """A private copy of the 12-frame sample clip inside this test's folder."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(sample_clip.read_bytes())
    return path


# ---- results ------------------------------------------------------------------------------------


def test_sample_writes_the_requested_clip_and_prints_its_path(tmp_path):
    out = tmp_path / "s.mp4"
    result = run("sample", out, "--seconds", 1, "--fps", 8, "--size", "64x48")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert "writing 8 frames" in result.stderr  # progress on stderr, results on stdout
    info = probe(out)
    assert (info.frame_count, info.fps, info.width, info.height) == (8, 8.0, 64, 48)


def test_info_prints_metadata_and_json(clip):
    human = run("info", clip)
    assert human.exit_code == 0 and "frame_count  12" in human.stdout and "64x48" in human.stdout
    data = json.loads(run("info", clip, "--json").stdout)
    assert (data["frame_count"], data["fps"], data["width"], data["height"]) == (12, 6.0, 64, 48)
    assert data["has_audio"] is False and data["video_codec"] == "h264" and data["path"] == str(clip)


def test_frames_default_is_first_and_last_frame(clip, tmp_path):
    result = run("frames", clip, "--out", tmp_path / "f")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["frame_00000.png", "frame_00011.png"]
    assert result.stdout.split() == [str(tmp_path / "f" / n) for n in ("frame_00000.png", "frame_00011.png")]


def test_frames_count_gives_n_evenly_spaced_exact_frames(clip, tmp_path):
    assert run("frames", clip, "--out", tmp_path / "f", "--count", 4).exit_code == 0
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert names == ["frame_00000.png", "frame_00004.png", "frame_00007.png", "frame_00011.png"]
    decoded = list(iter_frames(clip))
    for name in names:
        assert np.array_equal(load_image(tmp_path / "f" / name), decoded[int(name[6:11])])


def test_frames_window_size_and_sheet(clip, tmp_path):
    result = run("frames", clip, "--out", tmp_path / "f", "--start", 0.5, "--end", 1.5, "--size", "32x32",
                 "--sheet", tmp_path / "sheet.png")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert names == ["frame_00003.png", "frame_00008.png"]  # 6 fps: frames 3..8 show in 0.5-1.5 s
    assert all(load_image(tmp_path / "f" / n).shape == (32, 32, 3) for n in names)
    assert load_image(tmp_path / "sheet.png").shape == (32 + 8, 2 * (32 + 4) + 4, 3)  # one row of two tiles


def test_frames_of_tree_avi_come_from_the_whole_444_frame_stream(real_video, tmp_path):
    result = run("frames", real_video("tree.avi"), "--out", tmp_path / "f", "--count", 3)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [
        "frame_00000.png", "frame_00222.png", "frame_00443.png"]


@pytest.mark.parametrize("command", ["sample", "info", "frames"])
def test_help_ends_with_an_example_that_works(command, tmp_path, monkeypatch):
    text = run(command, "--help").stdout.rstrip().splitlines()
    assert text[-2].strip() == "Example:" and text[-1].strip().startswith("pdedit ")
    monkeypatch.chdir(tmp_path)
    for part in text[-1].strip().split("&&"):
        argv = shlex.split(part)
        assert argv[0] == "pdedit"
        result = run(*argv[1:])
        assert result.exit_code == 0, result.output


# ---- bad input: exit 2, one line, nothing written ----------------------------------------------


@pytest.fixture
def bad_inputs(tmp_path, clip) -> dict[str, Path]:
    """Broken inputs beside a good clip, all inside tmp_path."""
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("these are notes, not a video\n" * 40)
    good = write_video(tmp_path / "good.mp4", [np.full((48, 64, 3), 8 * i, np.uint8) for i in range(30)], 10)
    data = good.read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    good.unlink()
    write_video(tmp_path / "one.mp4", [np.zeros((48, 64, 3), np.uint8)], 10)
    return {"missing": tmp_path / "missing.mp4", "folder": tmp_path / "a_folder", "empty": tmp_path / "empty.mp4",
            "text": tmp_path / "notes.mp4", "truncated": tmp_path / "half.mp4", "one_frame": tmp_path / "one.mp4"}


@pytest.mark.parametrize("case, words", [
    ("missing", ["does not exist"]),
    ("folder", ["is a folder"]),
    ("empty", ["empty"]),
    ("text", ["notes.mp4", "not a readable video"]),
    ("truncated", ["half.mp4", "truncated"]),
    ("one_frame", ["one.mp4", "1 frame"]),
])
@pytest.mark.parametrize("command", ["info", "frames"])
def test_bad_video_is_refused(command, case, words, bad_inputs, tmp_path):
    before = snapshot(tmp_path)
    extra = ["--out", tmp_path / "out"] if command == "frames" else []
    assert_refused(run(command, bad_inputs[case], *extra), before, tmp_path, *words)


@pytest.mark.parametrize("window, words", [
    (["--start", 1.0, "--end", 1.0], ["must be before"]),
    (["--start", 1.5, "--end", 0.5], ["must be before"]),
    (["--end", 30], ["past the end"]),
    (["--start", 5], ["past the end"]),
])
def test_bad_window_is_refused(window, words, clip, tmp_path):
    before = snapshot(tmp_path)
    assert_refused(run("frames", clip, "--out", tmp_path / "out", *window), before, tmp_path, *words)


def test_output_equal_to_the_input_is_refused_even_with_force(clip, tmp_path):
    before = snapshot(tmp_path)
    result = run("frames", clip, "--out", tmp_path / "out", "--sheet", clip, "--force")
    assert_refused(result, before, tmp_path, "is the input")


def test_output_folder_not_writable_is_refused(clip, tmp_path):
    # Tests run as root, and root ignores permission bits (chmod cannot stop it), so the unwritable
    # "folder" is a regular file; the /proc case in test_video.py covers a real folder.
    (tmp_path / "file.txt").write_text("a file, not a folder")
    before = snapshot(tmp_path)
    assert_refused(run("sample", tmp_path / "file.txt" / "s.mp4"), before, tmp_path, "not a folder")
    assert_refused(run("frames", clip, "--out", tmp_path / "file.txt" / "f"), before, tmp_path, "not a folder")
    assert_refused(run("sample", tmp_path / "no" / "s.mp4"), before, tmp_path, "does not exist")


def test_existing_output_without_force_is_refused(clip, tmp_path):
    (tmp_path / "s.mp4").write_bytes(b"precious")
    assert run("frames", clip, "--out", tmp_path / "f").exit_code == 0
    before = snapshot(tmp_path)
    assert_refused(run("sample", tmp_path / "s.mp4"), before, tmp_path, "--force")
    assert_refused(run("frames", clip, "--out", tmp_path / "f"), before, tmp_path, "--force")
    assert run("sample", tmp_path / "s.mp4", "--force", "--seconds", 1, "--size", "64x48").exit_code == 0
    assert probe(tmp_path / "s.mp4").frame_count == 12


def test_bad_size_is_refused_before_writing(clip, tmp_path):
    before = snapshot(tmp_path)
    assert_refused(run("sample", tmp_path / "s.mp4", "--size", "100x75"), before, tmp_path, "multiples of 8")
    assert_refused(run("frames", clip, "--out", tmp_path / "f", "--size", "30x30"), before, tmp_path, "multiples of 8")
