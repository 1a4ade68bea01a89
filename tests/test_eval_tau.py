"""`pdedit eval tau` and pdedit.evaluate.tau: adherence scores, the sweep's bookkeeping, the command."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from cli_helpers import assert_refused, run, snapshot
from pdedit.errors import BadInput
from pdedit.evaluate.tau import adherence, load_clips, object_centre, parse_taus, tau_curve
from pdedit.video import save_image


def square_frame(x0: int, y0: int, side: int = 2, size: int = 8, value=(200, 40, 40), background=0) -> np.ndarray:
    """An (size, size, 3) frame with a side x side square whose top-left pixel is (x0, y0)."""
    frame = np.full((size, size, 3), background, np.uint8)
    frame[y0 : y0 + side, x0 : x0 + side] = value
    return frame


def test_object_centre_is_the_middle_of_the_square_on_black_or_white():
    # Pixels 3 and 4 cover [3, 5): the square's centre is at 4.0; rows 1-2 cover [1, 3): 2.0.
    assert object_centre(square_frame(3, 1)) == pytest.approx([4.0, 2.0])
    sketch = square_frame(3, 1, value=(0, 0, 0), background=255)  # a black silhouette on white
    assert object_centre(sketch) == pytest.approx([4.0, 2.0])


def test_object_centre_ignores_faint_noise_but_not_the_object():
    frame = square_frame(5, 5).astype(np.int16)
    frame[:2, :2] += 25  # faint sampling noise in a corner, below the threshold
    assert object_centre(frame.clip(0, 255).astype(np.uint8)) == pytest.approx([6.0, 6.0])
    assert object_centre(np.zeros((8, 8, 3), np.uint8)) == pytest.approx([4.0, 4.0])  # nothing: the image centre


def test_adherence_is_zero_on_the_real_frames_and_the_shift_otherwise():
    first, last = square_frame(0, 0), square_frame(4, 3)
    exact = adherence([first, square_frame(2, 2), last], first, last)
    assert exact == {"first_mse": 0.0, "first_px": 0.0, "last_mse": 0.0, "last_px": 0.0}
    off = adherence([first, square_frame(1, 3)], first, last)  # the end state 3 px left of the real one
    assert off["last_px"] == pytest.approx(3.0)
    assert off["last_mse"] > 0 and off["first_mse"] == 0.0


class LandsWithTau:
    """A stand-in pipeline: its clip ends on the last-frame instruction when tau >= 0.5, else stays on
    the first frame; it records the instructions it was given."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompt, first_frame, last_frame, num_frames, tau, **kwargs):
        self.calls.append({"prompt": prompt, "last": [f.copy() for f in last_frame], "tau": tau, **kwargs})
        videos = []
        for first, last in zip(first_frame, last_frame):
            end = last if tau >= 0.5 else first
            videos.append(np.stack([first] * (num_frames - 1) + [end]) / 255.0)
        return SimpleNamespace(frames=np.stack(videos).astype(np.float32))


def moving_clips(n: int) -> list[dict]:
    """Clips of a square moving i px to the right (i = 1..n), 4 frames each."""
    return [{"frames": np.stack([square_frame(0, 2)] * 3 + [square_frame(i, 2)]), "caption": f"clip {i}"}
            for i in range(1, n + 1)]


def test_tau_curve_scores_each_clip_at_each_tau_across_batches():
    pipe, clips = LandsWithTau(), moving_clips(5)
    curve = tau_curve(pipe, clips, (0.0, 1.0), steps=3, seed=7, batch_size=2)
    assert len(pipe.calls) == 2 * 3  # two taus, three batches of at most 2 clips
    assert [c["generator"].initial_seed() for c in pipe.calls[:3]] == [7, 8, 9]  # seed + batch, the same at every tau
    assert [c["generator"].initial_seed() for c in pipe.calls[3:]] == [7, 8, 9]
    assert curve.scores["last_px"][0] == pytest.approx([1, 2, 3, 4, 5])  # tau 0: the end state is the start
    assert curve.scores["last_px"][1] == pytest.approx(np.zeros(5))  # tau 1: on the real end state
    assert curve.moved_px == pytest.approx([1, 2, 3, 4, 5])
    assert curve.mean("last_px") == pytest.approx([3.0, 0.0])
    assert curve.se("last_px")[0] == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1) / np.sqrt(5))
    assert curve.mean("first_px") == pytest.approx([0.0, 0.0])
    data = json.loads(json.dumps(curve.to_dict()))
    assert data["curves"]["last_px"]["mean"] == [3.0, 0.0] and data["clips"] == 5 and data["taus"] == [0.0, 1.0]


def test_tau_curve_gives_the_model_a_sketch_of_the_real_last_frame():
    pipe, clips = LandsWithTau(), moving_clips(2)
    curve = tau_curve(pipe, clips, (1.0,), instruction="sketch", method="silhouette", steps=2)
    given = pipe.calls[0]["last"]
    assert all(f.max() == 255 and f[2, 0].tolist() == [255, 255, 255] for f in given)  # white background
    assert given[1][2, 2].tolist() == [0, 0, 0]  # ink where the square ends (columns 2-3 of clip 2)
    assert curve.instruction == "sketch:silhouette"
    # The stand-in lands on the sketch, and the sketch's square is where the real one is.
    assert curve.scores["last_px"][0] == pytest.approx([0.0, 0.0])
    assert curve.scores["last_mse"][0].min() > 0.1  # but it is not the real frame


def test_parse_taus_refuses_values_outside_zero_one():
    assert parse_taus("0, 0.5,1") == (0.0, 0.5, 1.0)
    for text in ("0,2", "a,b", ""):
        with pytest.raises(BadInput, match="--taus"):
            parse_taus(text)


def test_load_clips_reads_png_frame_folders_with_captions_and_resamples(tmp_path):
    clip = tmp_path / "clips" / "one"
    clip.mkdir(parents=True)
    for i in range(6):
        save_image(clip / f"{i:03d}.png", square_frame(i, 2))
    (clip / "caption.txt").write_text("a red square moving right\n")
    (clip.parent / "notes.md").write_text("not a clip")
    [loaded] = load_clips(clip.parent, num_frames=3, size=(8, 8))
    assert loaded["frames"].shape == (3, 8, 8, 3) and loaded["caption"] == "a red square moving right"
    assert [object_centre(f)[0] for f in loaded["frames"]] == pytest.approx([1.0, 3.0, 6.0])  # frames 0, 2, 5
    with pytest.raises(BadInput, match="fewer than the 8 frames"):
        load_clips(clip.parent, num_frames=8, size=(8, 8))


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Two PNG-frame clips of a square moving across a 64x48 frame (the tiny model's size class)."""
    root = tmp_path_factory.mktemp("held_out")
    for name, dx in (("a", 4), ("b", -4)):
        folder = root / name
        folder.mkdir()
        for i in range(8):
            frame = np.zeros((48, 64, 3), np.uint8)
            x = 28 + dx * i // 2
            frame[16:32, x : x + 16] = (40, 200, 60)
            save_image(folder / f"{i:02d}.png", frame)
    return root


def test_eval_tau_prints_a_table_per_model_and_writes_the_plot(tiny_model_dir, held_out, tmp_path, single_thread_torch):
    plot = tmp_path / "tau.png"
    result = run("eval", "tau", "--model", tiny_model_dir, "--clips", held_out, "--taus", "0,1", "--size", "64x48",
                 "--steps", "2", "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "2 clips" in result.stdout and " 1.00 |" in result.stdout and "last_px" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_tau_json_compares_two_models_on_the_same_clips(tiny_model_dir, held_out, single_thread_torch):
    result = run("eval", "tau", "--model", tiny_model_dir, "--model", tiny_model_dir, "--clips", held_out,
                 "--taus", "0,1", "--size", "64x48", "--steps", "2", "--instruction", "sketch", "--method",
                 "silhouette", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [m["instruction"] for m in data["models"]] == ["sketch:silhouette"] * 2
    first, second = data["models"]
    assert first["curves"] == second["curves"]  # same model, same clips, same seed: same numbers
    assert len(first["curves"]["last_px"]["mean"]) == 2 and first["clips"] == 2
    assert first["moved_px"]["mean"] == pytest.approx(14.0)  # the squares move 14 px (7 steps of 2)


@pytest.mark.parametrize("args, words", [
    (["--taus", "0,1.5"], ["--taus", "[0, 1]"]),
    (["--clips", "EMPTY"], ["no videos"]),
    (["--model", "MISSING"], ["does not exist"]),
    (["--plot", "EXISTING"], ["already exists", "--force"]),
    (["--plot", "JPG"], ["must end in .png"]),
])
def test_eval_tau_refuses_bad_input_with_one_line_and_writes_nothing(tiny_model_dir, held_out, tmp_path, args, words):
    (tmp_path / "empty").mkdir()
    (tmp_path / "old.png").write_bytes(b"old")
    replace = {"EMPTY": tmp_path / "empty", "MISSING": tmp_path / "nope", "EXISTING": tmp_path / "old.png",
               "JPG": tmp_path / "tau.jpg"}
    base = {"--model": tiny_model_dir, "--clips": held_out, "--plot": tmp_path / "tau.png"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = replace.get(value, value)
    before = snapshot(tmp_path)
    result = run("eval", "tau", *[x for kv in base.items() for x in kv], "--size", "64x48", "--steps", "1")
    assert_refused(result, before, tmp_path, *words)
