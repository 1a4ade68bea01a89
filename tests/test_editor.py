"""`edit_video` and `pdedit edit`: clips made end to end, engines chosen and announced, bad input refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import run
from pdedit.editor import edit_video
from pdedit.errors import BadInput, MissingModel
from pdedit.instructions import apply_edit
from pdedit.video import iter_frames, load_image, make_sample, open_clip, probe, save_image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def digest(path: Path) -> str:
    """SHA-256 of a file: proves an input was left untouched."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """A folder with a 2 s, 12 fps, 96x72 sample clip and edited first/last frames as PNGs."""
    folder = tmp_path_factory.mktemp("edit")
    video = make_sample(folder / "clip.mp4", seconds=2.0, fps=12, size=(96, 72))
    clip = open_clip(video, size=(96, 72))
    save_image(folder / "first.png", apply_edit(clip.first(), "auto:sepia"))
    save_image(folder / "last.png", apply_edit(clip.last(), "auto:sepia"))
    return folder


@pytest.fixture
def work(tmp_path, clip_dir) -> Path:
    """A private copy of the clip and edits for one test (so 'nothing written' can be checked)."""
    for name in ("clip.mp4", "first.png", "last.png"):
        (tmp_path / name).write_bytes((clip_dir / name).read_bytes())
    return tmp_path


def test_edit_command_writes_the_window_with_its_frame_count_fps_and_duration(work):
    out = work / "out.mp4"
    result = run("edit", work / "clip.mp4", "--first-edit", work / "first.png", "--last-edit", work / "last.png",
                 "-o", out)
    assert result.exit_code == 0, result.output
    assert "no --model given: using the weight-free propagate engine" in result.stderr
    assert result.stdout.strip() == str(out)
    info = probe(out)
    assert (info.frame_count, info.fps, info.width, info.height) == (24, 12.0, 96, 72)
    assert abs(info.duration - 2.0) < 0.05
    frames = list(iter_frames(out))
    # the encoded keyframes are the edits: H.264 4:2:0 at CRF 18 brings this small detailed clip to about
    # 33 dB even for a still edited frame, so 31 dB is the codec's ceiling less a margin
    assert psnr(frames[0], load_image(work / "first.png")) >= 31.0
    assert psnr(frames[-1], load_image(work / "last.png")) >= 31.0
    # and the middle is the edit too: sepia carried over, not the source colours
    source_mid = list(iter_frames(work / "clip.mp4", [12]))[0]
    oracle_mid = apply_edit(source_mid, "auto:sepia")
    assert psnr(frames[12], oracle_mid) >= psnr(frames[12], source_mid) + 5.0


def test_edit_specs_window_preview_and_json(work):
    out, sheet = work / "out.mp4", work / "sheet.png"
    result = run("edit", work / "clip.mp4", "--first-edit", "auto:sepia", "--last-edit", "auto:posterize",
                 "-o", out, "--start", 0.5, "--end", 1.5, "--preview", sheet, "--json", "--crf", 12)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["engine"] == "propagate" and data["frames"] == 12 and data["size"] == [96, 72]
    assert abs(data["seconds"] - 1.0) < 1e-6 and data["preview"] == str(sheet)
    assert set(data["timings"]) >= {"prepare", "keyframes", "render", "write", "total"}
    assert probe(out).frame_count == 12
    assert load_image(sheet).shape[2] == 3


def test_basic_mode_without_last_edit_and_resampled_frames(work):
    out = work / "basic.mp4"
    result = edit_video(work / "clip.mp4", work / "first.png", None, out, frames=8, size=(64, 48))
    assert (result.engine, result.frames, result.size) == ("propagate", 8, (64, 48))
    info = probe(out)
    assert info.frame_count == 8 and abs(info.duration - 2.0) < 0.05  # resampled, duration kept
    assert result.fps == pytest.approx(4.0)


def test_edit_image_of_a_slightly_different_size_is_mapped(work):
    # 98x73 is within 2% of 96x72's aspect: it is resized like the frames, not refused
    image = load_image(work / "first.png")
    import cv2

    save_image(work / "big.png", cv2.resize(image, (98, 73)))
    result = edit_video(work / "clip.mp4", work / "big.png", None, work / "o.mp4", frames=4)
    assert result.frames == 4


def test_audio_of_the_window_is_kept(real_video, tmp_path):
    video = real_video("bigbuckbunny.mp4")
    out = tmp_path / "bunny.mp4"
    result = run("edit", video, "--first-edit", "auto:sepia", "--last-edit", "auto:sepia", "-o", out,
                 "--start", 1.0, "--end", 2.0, "--size", "160x88")
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert info.has_audio and info.frame_count == 25 and abs(info.duration - 1.0) < 0.1
    no_audio = tmp_path / "silent.mp4"
    assert run("edit", video, "--first-edit", "auto:sepia", "-o", no_audio, "--start", 1.0, "--end", 1.4,
               "--size", "160x88", "--no-audio").exit_code == 0
    assert not probe(no_audio).has_audio


def test_pixeldance_engine_runs_end_to_end_with_a_tiny_model(work, tiny_model_dir):
    out = work / "pd.mp4"
    result = run("edit", work / "clip.mp4", "--first-edit", work / "first.png", "--last-edit", work / "last.png",
                 "-o", out, "--model", tiny_model_dir, "--size", "64x48", "--steps", 2, "--strength", 0.5,
                 "--prompt", "a sepia photo", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["engine"] == "pixeldance" and "PixelDancePipeline" in data["reason"]
    info = probe(out)
    # the model's 8 frames span the whole 2 s window: 4 fps keeps the duration
    assert info.frame_count == data["frames"] == 8 and abs(info.duration - 2.0) < 0.05


# ---- bad input: exit 2, one clear line, nothing written, input untouched ------------------------


def _not_pixeldance(folder: Path) -> Path:
    """A diffusers-looking folder of another pipeline."""
    model = folder / "sd"
    model.mkdir()
    (model / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return model


BAD = {
    "missing edit image": (lambda w: ["--first-edit", w / "nope.png"], ["nope.png"]),
    "unreadable edit image": (lambda w: ["--first-edit", w / "clip.mp4"], ["cannot be read"]),
    "edit image of another aspect": (lambda w: ["--first-edit", w / "square.png"], ["aspect", "square.png"]),
    "pixeldance without model": (lambda w: ["--first-edit", w / "first.png", "--engine", "pixeldance"], ["--model"]),
    "not a pixeldance model": (
        lambda w: ["--first-edit", w / "first.png", "--model", _not_pixeldance(w)], ["StableDiffusionPipeline"]),
    "unknown engine": (lambda w: ["--first-edit", w / "first.png", "--engine", "magic"], ["magic"]),
    "window outside the video": (lambda w: ["--first-edit", w / "first.png", "--start", 5], ["--start"]),
    "bad edit spec": (lambda w: ["--first-edit", "auto:nosuchedit"], ["nosuchedit"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_with_one_line_and_nothing_written(work, case):
    save_image(work / "square.png", np.zeros((72, 72, 3), np.uint8))
    args, words = BAD[case]
    extra = args(work)
    before = {p: digest(p) for p in work.rglob("*") if p.is_file()}
    out = work / "out.mp4"
    result = run("edit", work / "clip.mp4", *extra, "-o", out)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert not out.exists()
    assert {p: digest(p) for p in work.rglob("*") if p.is_file()} == before


def test_output_equal_to_input_is_refused_and_input_untouched(work):
    video = work / "clip.mp4"
    before = digest(video)
    result = run("edit", video, "--first-edit", work / "first.png", "-o", video, "--force")
    assert result.exit_code == 2 and "is the input" in result.stderr
    assert digest(video) == before
    assert [p.name for p in work.iterdir() if p.name.startswith(".")] == []  # no partial files


def test_aspect_error_suggests_a_fix(work):
    save_image(work / "square.png", np.zeros((72, 72, 3), np.uint8))
    with pytest.raises(BadInput, match=r"aspect 1\.00.*aspect 1\.33.*crop or pad"):
        edit_video(work / "clip.mp4", work / "square.png", None, work / "o.mp4")


def test_not_a_model_folder_is_missing_model(work):
    with pytest.raises(MissingModel):
        edit_video(work / "clip.mp4", work / "first.png", None, work / "o.mp4", engine="pixeldance",
                   model=work / "absent")
    assert not (work / "o.mp4").exists()


def test_pixeldance_refuses_middle_keyframes_before_building_the_engine(work, tiny_model_dir, monkeypatch):
    from pdedit import engines

    def never(*args, **kwargs):
        raise AssertionError("the engine was built before the keyframes were refused")

    monkeypatch.setattr(engines, "build_engine", never)
    out = work / "pd.mp4"
    result = run("edit", work / "clip.mp4", "--first-edit", work / "first.png", "--last-edit", work / "last.png",
                 "--keyframe", f"3={work / 'first.png'}", "-o", out, "--model", tiny_model_dir,
                 "--size", "64x48", "--steps", 2)
    assert result.exit_code == 2, result.output
    assert "first and a last frame only" in result.stderr and "--engine ltx" in result.stderr
    assert not out.exists()


def test_pixeldance_engine_itself_refuses_keyframes(tiny_model_dir):
    from pdedit.engines import EditJob
    from pdedit.engines.pixeldance import PixelDanceEngine
    from pdedit.errors import Unsupported

    frame = np.zeros((48, 64, 3), np.uint8)
    job = EditJob(source=None, first=frame, last=frame, num_frames=8, fps=8, size=(64, 48), guidance=7.5,
                  keyframes={3: frame})
    with pytest.raises(Unsupported, match="first and a last frame only"):
        next(iter(PixelDanceEngine(tiny_model_dir, device=None).render(job)))


def test_an_engine_short_of_frames_leaves_the_existing_output_untouched(work, monkeypatch):
    from pdedit import engines

    class Short:
        name = "propagate"

        def __init__(self, *args, **kwargs):
            pass

        def render(self, job, progress=False):
            frame = np.zeros((job.size[1], job.size[0], 3), np.uint8)
            return iter([frame] * (job.num_frames - 1))

    monkeypatch.setattr(engines, "build_engine", lambda spec, model=None, **options: Short())
    out = work / "out.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(RuntimeError, match="frames"):
        edit_video(work / "clip.mp4", work / "first.png", None, out, force=True)
    assert out.read_bytes() == b"precious"
    assert [p.name for p in work.iterdir() if p.name.startswith(".")] == []
