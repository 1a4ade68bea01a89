"""pdedit.video: probing, windows, resizing, decoding, atomic writing, audio, preview sheets."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from pdedit.errors import BadInput
from pdedit.video import (
    SEEK_GAP,
    Clip,
    VideoInfo,
    aspect_mismatch,
    atomic_path,
    check_output,
    default_size,
    ffmpeg_exe,
    iter_frames,
    load_image,
    make_sample,
    open_clip,
    parse_size,
    plan_window,
    preview_sheet,
    probe,
    resize_frame,
    save_image,
    write_video,
)


def smooth_frames(n: int, w: int = 96, h: int = 64) -> list[np.ndarray]:
    """Smooth moving colour waves (H.264-friendly); blue carries the frame number as 8 * i."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for i in range(n):
        r = 128 + 90 * np.sin(2 * np.pi * (x / w + i / n))
        g = 128 + 90 * np.cos(2 * np.pi * y / h)
        b = np.full_like(x, 8 * i)
        frames.append(np.stack([r, g, b], -1).round().astype(np.uint8))
    return frames


def fake_info(frame_count: int = 100, fps: float = 25.0) -> VideoInfo:
    """A VideoInfo for window arithmetic, no file needed."""
    return VideoInfo(Path("fake.mp4"), 640, 360, fps, frame_count, frame_count / fps, False, "h264", None)


def audio_streams(path: Path) -> list[str]:
    """Audio codec names that `ffmpeg -i` reports for ``path``."""
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return re.findall(r"Stream #.*?Audio: (\w+)", err)


def ffmpeg_duration(path: Path) -> float:
    """Container duration in seconds from `ffmpeg -i`."""
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", err).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """30 smooth frames (96x64) written at 15 fps."""
    frames = smooth_frames(30)
    path = write_video(tmp_path_factory.mktemp("written") / "waves.mp4", frames, 15)
    return path, frames


# ---- writing and reading back -------------------------------------------------------------------


def test_written_clip_reads_back_with_its_frame_count_fps_and_size(written):
    info = probe(written[0])
    assert (info.frame_count, info.fps, info.width, info.height) == (30, 15.0, 96, 64)
    assert info.duration == pytest.approx(2.0)
    assert (info.video_codec, info.has_audio, info.audio_codec, info.decoder) == ("h264", False, None, "opencv")


def test_pixels_round_trip_within_codec_tolerance_and_in_order(written):
    path, frames = written
    back = list(iter_frames(path))
    assert len(back) == len(frames)
    assert all(b.shape == (64, 96, 3) and b.dtype == np.uint8 for b in back)
    assert min(cv2.PSNR(a, b) for a, b in zip(frames, back)) > 38  # CRF 18, yuv420p
    assert [round(b[..., 2].mean() / 8) for b in back] == list(range(30))  # no frame dropped or swapped


def test_selected_indices_match_sequential_decoding_including_repeats_and_seeks(tmp_path):
    frames = smooth_frames(SEEK_GAP + 40)
    path = write_video(tmp_path / "long.mp4", frames, 25)
    every = list(iter_frames(path))
    wanted = [0, 0, 3, SEEK_GAP + 20, SEEK_GAP + 20, len(frames) - 1]  # a gap long enough to seek
    picked = list(iter_frames(path, wanted))
    assert len(picked) == len(wanted)
    for i, frame in zip(wanted, picked):
        assert np.array_equal(frame, every[i])
    picked[0][:] = 0  # a repeated frame is its own array
    assert not np.array_equal(picked[0], picked[1])


def test_ffmpeg_reader_gives_the_same_frames_as_opencv(written):
    from dataclasses import replace

    from pdedit.video import _decode

    info = probe(written[0])
    via_ffmpeg = list(_decode(replace(info, decoder="ffmpeg"), [0, 1, 1, 29]))
    via_opencv = list(_decode(info, [0, 1, 1, 29]))
    assert len(via_ffmpeg) == 4
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(via_ffmpeg, via_opencv)) <= 2


def test_decreasing_indices_are_refused(written):
    with pytest.raises(ValueError, match="non-decreasing"):
        list(iter_frames(written[0], [5, 2]))


def test_a_stream_that_ends_early_raises_badinput_rather_than_giving_a_short_clip(written, tmp_path):
    from dataclasses import replace

    from pdedit.video import _decode

    half = truncated_copy(written[0], tmp_path, "half.mp4")
    claimed = replace(probe(written[0]), path=half)  # what the file said before it was cut
    for decoder in ("opencv", "ffmpeg"):  # OpenCV hands over to ffmpeg, which fails too
        with pytest.raises(BadInput, match="ends early"):
            list(_decode(replace(claimed, decoder=decoder), range(30)))


def test_odd_frame_size_is_written_with_even_sides(tmp_path):
    info = probe(write_video(tmp_path / "odd.mp4", [f[:63, :95] for f in smooth_frames(4)], 10))
    assert (info.width, info.height) == (94, 62)


# ---- windows ------------------------------------------------------------------------------------


def test_window_of_n_evenly_spaced_frames_spans_first_to_last():
    w = plan_window(fake_info(100, 25), num_frames=5)
    assert w.indices == (0, 25, 50, 74, 99)
    assert w.fps == pytest.approx(1.25)  # 5 frames shown over the 4 s the window lasts
    assert (w.start, w.end) == (0.0, pytest.approx(4.0))


def test_window_at_target_fps_takes_every_frame_time():
    w = plan_window(fake_info(100, 25), fps=5)
    assert w.indices == tuple(range(0, 100, 5))
    assert w.fps == 5 and w.end == pytest.approx(4.0)


def test_window_start_end_selects_the_frames_shown_in_those_seconds():
    w = plan_window(fake_info(100, 25), start=1.0, end=2.0)
    assert w.indices == tuple(range(25, 50))
    assert (w.start, w.end, w.fps) == (1.0, 2.0, 25)


def test_window_with_frames_and_fps_starts_at_start():
    w = plan_window(fake_info(100, 25), start=1.0, num_frames=8, fps=5)
    assert w.indices == (25, 30, 35, 40, 45, 50, 55, 60)
    assert w.end - w.start == pytest.approx(8 / 5)


def test_upsampling_a_short_window_repeats_frames_in_order():
    w = plan_window(fake_info(100, 25), start=0.0, end=0.16, num_frames=10)  # 4 source frames
    assert len(w.indices) == 10 and set(w.indices) == {0, 1, 2, 3}
    assert list(w.indices) == sorted(w.indices)
    assert w.end == pytest.approx(0.16)


@pytest.mark.parametrize("kwargs, message", [
    ({"start": 2.0, "end": 2.0}, "must be before"),
    ({"start": 3.0, "end": 1.0}, "must be before"),
    ({"start": 5.0}, "past the end"),
    ({"end": 9.0}, "past the end"),
    ({"start": -1.0}, "negative"),
    ({"start": 1.0, "end": 1.03}, "at least 2"),
    ({"num_frames": 1}, "at least 2"),
    ({"num_frames": 30, "fps": 5}, "need 6.00 s"),
    ({"fps": 0}, "positive"),
])
def test_bad_windows_raise_badinput_naming_the_problem(kwargs, message):
    with pytest.raises(BadInput, match=message):
        plan_window(fake_info(100, 25), **kwargs)


# ---- sizes and resizing -------------------------------------------------------------------------


def test_parse_size_accepts_multiples_of_eight_only():
    assert parse_size("512x320") == (512, 320)
    assert parse_size(" 64X48 ") == (64, 48)
    for bad in ("513x320", "0x64", "512", "axb", "-8x8"):
        with pytest.raises(BadInput):
            parse_size(bad)


def test_default_size_keeps_aspect_on_the_multiple_of_eight_grid():
    assert default_size(1280, 720) == (512, 288)
    assert default_size(720, 1280) == (288, 512)
    w, h = default_size(176, 144)  # smaller than the model: scaled up
    assert (w, h) == (512, 416) and w % 8 == 0 and h % 8 == 0
    assert aspect_mismatch((176, 144), (w, h)) < 0.01


def test_aspect_mismatch_is_relative_and_symmetric():
    assert aspect_mismatch((640, 360), (1280, 720)) == 0.0
    assert aspect_mismatch((1920, 1080), (512, 512)) == pytest.approx(16 / 9 - 1)
    assert aspect_mismatch((512, 512), (1920, 1080)) == pytest.approx(16 / 9 - 1)


@pytest.fixture
def halves() -> np.ndarray:
    """A 200x100 frame: red left half, blue right half, a green 10-px band at the far left."""
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[:, :100] = (255, 0, 0)
    frame[:, 100:] = (0, 0, 255)
    frame[:, :10] = (0, 255, 0)
    return frame


def test_crop_policy_covers_and_centre_crops(halves):
    out = resize_frame(halves, (64, 64), "crop")
    assert out.shape == (64, 64, 3)
    assert out[:, :30, 0].mean() > 240 and out[:, 34:, 2].mean() > 240  # red | blue, no bars
    assert out[..., 1].max() < 30  # the green band at the far left is cropped away


def test_pad_policy_contains_with_black_bars(halves):
    out = resize_frame(halves, (64, 64), "pad")
    assert out.shape == (64, 64, 3)
    assert out[:14].max() == 0 and out[-14:].max() == 0  # 64x32 picture, 16-px bars
    assert out[20:44, 5:30, 0].mean() > 240 and out[20:44, 0:2, 1].mean() > 200  # green band kept


def test_fit_policy_stretches_to_exactly_the_size(halves):
    out = resize_frame(halves, (64, 64), "fit")
    assert out.shape == (64, 64, 3)
    assert out[:, :2, 1].mean() > 200 and out[:, 36:, 2].mean() > 240  # everything kept, no bars


def test_unknown_resize_policy_is_badinput(halves):
    with pytest.raises(BadInput, match="crop, pad, fit"):
        resize_frame(halves, (64, 64), "zoom")


# ---- clips --------------------------------------------------------------------------------------


def test_clip_is_a_reiterable_window_at_its_size(written):
    clip = open_clip(written[0], start=0.5, end=1.5, num_frames=6, size=(48, 32), resize="fit")
    assert isinstance(clip, Clip) and len(clip) == 6 and clip.size == (48, 32)
    first_pass, second_pass = clip.frames(), list(clip)
    assert all(f.shape == (32, 48, 3) for f in first_pass)
    assert all(np.array_equal(a, b) for a, b in zip(first_pass, second_pass))
    assert np.array_equal(clip.first(), first_pass[0]) and np.array_equal(clip.last(), first_pass[-1])
    assert clip.window.indices[0] == 8 and clip.window.indices[-1] == 22  # 0.5 s and the last frame before 1.5 s
    assert clip.fps == pytest.approx(6 / (15 / 15))


def test_clip_default_size_is_the_model_grid(written):
    assert open_clip(written[0]).size == (512, 344)  # 96x64 scaled to longer side 512, multiples of 8


# ---- atomic writes and output checks ------------------------------------------------------------


def test_error_mid_write_leaves_no_file(tmp_path):
    def broken():
        yield from smooth_frames(5)
        raise RuntimeError("engine crashed")

    with pytest.raises(RuntimeError, match="engine crashed"):
        write_video(tmp_path / "out.mp4", broken(), 10)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_mid_write_with_audio_leaves_no_file(tmp_path, sample_clip):
    def interrupted():
        yield from smooth_frames(3)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_video(tmp_path / "out.mp4", interrupted(), 10, audio_from=sample_clip)
    assert list(tmp_path.iterdir()) == []


def test_frame_of_another_size_mid_write_leaves_no_file(tmp_path):
    frames = smooth_frames(3) + [np.zeros((8, 8, 3), np.uint8)]
    with pytest.raises(ValueError, match="expected uint8"):
        write_video(tmp_path / "out.mp4", frames, 10)
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_renames_on_success_and_deletes_on_error(tmp_path):
    with atomic_path(tmp_path / "a.txt") as tmp:
        assert tmp.parent == tmp_path and tmp.exists()
        tmp.write_text("done")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    with pytest.raises(OSError):
        with atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("half")
            raise OSError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_check_output_refuses_input_existing_missing_and_unwritable_targets(tmp_path, sample_clip):
    with pytest.raises(BadInput, match="is the input"):
        check_output(sample_clip, inputs=[sample_clip], force=True)
    existing = tmp_path / "x.mp4"
    existing.write_bytes(b"keep")
    with pytest.raises(BadInput, match="--force"):
        check_output(existing)
    check_output(existing, force=True)
    with pytest.raises(BadInput, match="does not exist"):
        check_output(tmp_path / "no" / "x.mp4")
    # Tests run as root, which ignores permission bits: a regular file as the "folder" is unwritable for anyone.
    with pytest.raises(BadInput, match="not a folder"):
        check_output(existing / "x.mp4")
    assert existing.read_bytes() == b"keep"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (a folder nobody can create files in)")
def test_check_output_refuses_a_folder_where_files_cannot_be_created():
    with pytest.raises(BadInput, match="cannot write to folder /proc"):
        check_output("/proc/pdedit-test.mp4")


def test_writing_over_the_input_is_refused_even_with_force(sample_clip):
    before = sample_clip.read_bytes()
    with pytest.raises(BadInput, match="is the input"):
        write_video(sample_clip, smooth_frames(3), 10, inputs=[sample_clip], force=True)
    assert sample_clip.read_bytes() == before


# ---- audio --------------------------------------------------------------------------------------


def make_with_audio(path: Path, audio_codec: str) -> Path:
    """A 2 s, 10 fps test clip with a sine tone, written by ffmpeg directly."""
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", audio_codec, str(path)], check=True)
    return path


def test_audio_is_stream_copied_for_the_window(tmp_path):
    source = make_with_audio(tmp_path / "tone.mp4", "aac")
    out = write_video(tmp_path / "out.mp4", smooth_frames(10, 64, 48), 10, audio_from=source, audio_window=(0.5, 1.5))
    assert audio_streams(out) == ["aac"]
    assert ffmpeg_duration(out) == pytest.approx(1.0, abs=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "tone.mp4"]  # no leftovers


def test_audio_mp4_cannot_hold_is_reencoded_to_aac(tmp_path):
    source = make_with_audio(tmp_path / "tone.mkv", "pcm_s16le")  # PCM cannot go into mp4
    out = write_video(tmp_path / "out.mp4", smooth_frames(10, 64, 48), 10, audio_from=source)
    assert audio_streams(out) == ["aac"]


def test_audio_from_a_silent_video_writes_video_only(tmp_path, sample_clip):
    out = write_video(tmp_path / "out.mp4", smooth_frames(4), 10, audio_from=sample_clip)
    assert audio_streams(out) == [] and probe(out).frame_count == 4


def test_bigbuckbunny_audio_passes_through(real_video, tmp_path):
    source = real_video("bigbuckbunny.mp4")
    clip = open_clip(source, start=1.0, end=2.0, size=(128, 72))
    out = write_video(tmp_path / "bbb.mp4", clip, clip.fps, audio_from=source,
                      audio_window=(clip.window.start, clip.window.end))
    info = probe(out)
    assert (info.has_audio, info.audio_codec, info.frame_count) == (True, "aac", 25)
    assert audio_streams(out) == ["aac"]


# ---- real clips ---------------------------------------------------------------------------------

# True frame counts. book.mkv: SOURCES.md says 110, which is OpenCV's estimate (container duration
# 3.67 s, counted from 0 although the first frame starts at 0.033 s, times 30 fps); the stream holds
# 109 packets and OpenCV, ffmpeg and a stream copy all give 109 frames, so 109 is true.
REAL_COUNTS = {
    "walk.mkv": 89, "book.mkv": 109, "bottle-detection.mp4": 1189, "car-detection.mp4": 377,
    "one-by-one-person-detection.mp4": 1394, "bigbuckbunny.mp4": 132, "bikes.mp4": 250,
    "carphone.mp4": 120, "tree.avi": 444, "vtest.avi": 795,
}


@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_every_real_clip_opens_with_its_true_frame_count(real_video, name):
    info = probe(real_video(name))
    assert info.frame_count == REAL_COUNTS[name]
    last = list(iter_frames(info.path, [info.frame_count - 1]))  # the count is real: its last frame decodes
    assert len(last) == 1 and last[0].shape == (info.height, info.width, 3)


def test_tree_avi_decodes_all_444_frames_through_ffmpeg(real_video):
    info = probe(real_video("tree.avi"))
    assert info.decoder == "ffmpeg" and info.fps == 15.0
    frames = list(iter_frames(info.path))
    assert len(frames) == 444
    # Cinepak "repeat" packets are empty: frame 11 is the first new picture, 1..10 repeat frame 0.
    assert all(np.array_equal(frames[0], frames[i]) for i in range(1, 11))
    assert not np.array_equal(frames[10], frames[11])


def test_book_mkv_decodes_109_frames(real_video):
    assert sum(1 for _ in iter_frames(real_video("book.mkv"))) == 109


def test_carphone_is_upscaled_to_the_model_grid(real_video):
    clip = open_clip(real_video("carphone.mp4"), num_frames=2)
    assert clip.size == (512, 416) and clip.first().shape == (416, 512, 3)


# ---- bad input ----------------------------------------------------------------------------------


def truncated_copy(source: Path, tmp_path: Path, name: str) -> Path:
    """The first half of ``source``'s bytes."""
    data = source.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    return tmp_path / name


def test_probe_refuses_missing_folder_empty_text_truncated_and_one_frame(tmp_path, written):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 50)
    moov_last = tmp_path / "moov_last.mp4"  # a plain ffmpeg mp4 keeps its index at the end
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(written[0]), "-c", "copy", str(moov_last)], check=True)
    one = write_video(tmp_path / "one.mp4", smooth_frames(1), 10)
    cases = {
        tmp_path / "missing.mp4": "does not exist",
        tmp_path: "is a folder",
        tmp_path / "empty.mp4": "empty",
        tmp_path / "notes.mp4": "not a readable video",
        truncated_copy(written[0], tmp_path, "half_faststart.mp4"): "truncated",
        truncated_copy(moov_last, tmp_path, "half_moov_last.mp4"): "truncated",
        one: "1 frame",
    }
    for path, message in cases.items():
        with pytest.raises(BadInput, match=message):
            probe(path)


# ---- images, sheets, sample ---------------------------------------------------------------------


def test_image_save_load_round_trip_is_exact(tmp_path):
    frame = smooth_frames(1)[0]
    assert np.array_equal(load_image(save_image(tmp_path / "f.png", frame)), frame)
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_load_image_refuses_missing_and_unreadable(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(BadInput, match="cannot be read"):
        load_image(tmp_path / "bad.png")


def test_preview_sheet_thins_to_max_frames_keeping_first_and_last(tmp_path):
    frames = [np.full((48, 64, 3), (10 * i, 200 - 10 * i, 128), np.uint8) for i in range(20)]
    sheet = load_image(preview_sheet(frames, tmp_path / "sheet.png", labels=range(100, 120)))
    gap = 4
    assert sheet.shape == (4 * (48 + gap) + gap, 4 * (64 + gap) + gap, 3)  # 16 tiles, 4x4
    first = sheet[gap + 30, gap + 40]
    last = sheet[3 * (48 + gap) + gap + 30, 3 * (64 + gap) + gap + 40]
    assert np.abs(first.astype(int) - (0, 200, 128)).max() <= 1
    assert np.abs(last.astype(int) - (190, 10, 128)).max() <= 1
    label = sheet[gap + 2: gap + 18, gap + 2: gap + 30]
    assert label.max() > 200 and label.min() < 20  # white text on a dark box


def test_sample_is_a_slow_camera_move(tmp_path):
    path = make_sample(tmp_path / "s.mp4", seconds=2.0, fps=12, size=(96, 64))
    info = probe(path)
    assert (info.frame_count, info.fps, info.width, info.height) == (24, 12.0, 96, 64)
    frames = list(iter_frames(path))
    steps = [np.abs(a.astype(int) - b).mean() for a, b in zip(frames, frames[1:])]
    travel = np.abs(frames[0].astype(int) - frames[-1]).mean()
    assert min(steps) > 0.5  # the camera moves every frame
    assert max(steps) < 0.4 * travel  # and gradually: no step is a large part of the whole move


def test_even_indices_keep_both_ends_and_repeat_when_too_few():
    from pdedit.video import even_indices

    assert even_indices(0, 9, 4) == (0, 3, 6, 9)
    assert even_indices(5, 6, 4) == (5, 5, 6, 6)
    assert even_indices(0, 100, 0) == ()
