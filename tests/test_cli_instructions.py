"""`pdedit autoedit`, `pdedit annotate`, `pdedit gallery`: results, help examples, refusals of bad input."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from cli_helpers import assert_refused, run, snapshot
from pdedit.instructions import EDITS, WEIGHT_FREE_CONVERSIONS, apply_edit, convert
from pdedit.instructions.boxes import label_color
from pdedit.video import load_image, save_image


@pytest.fixture
def photo(tmp_path) -> Path:
    """The coffee photo from scikit-image, saved as a PNG in this test's folder."""
    return save_image(tmp_path / "coffee.png", data.coffee())


def test_autoedit_writes_the_same_image_as_apply_edit(tmp_path, photo):
    out = tmp_path / "hue.png"
    result = run("autoedit", photo, "auto:hue:degrees=40", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert np.array_equal(load_image(out), apply_edit(load_image(photo), "auto:hue:degrees=40"))


def test_autoedit_replaces_an_existing_output_only_with_force(tmp_path, photo):
    out = tmp_path / "out.png"
    assert run("autoedit", photo, "auto:sepia", "-o", out).exit_code == 0
    before = snapshot(tmp_path)
    assert_refused(run("autoedit", photo, "auto:night", "-o", out), before, tmp_path, "already exists", "--force")
    assert run("autoedit", photo, "auto:night", "-o", out, "--force").exit_code == 0
    assert np.array_equal(load_image(out), apply_edit(load_image(photo), "auto:night"))


@pytest.mark.parametrize(
    "spec, words",
    [
        ("auto:sepa", ["unknown edit 'sepa'", "auto:sepia", "auto:posterize(levels=4)"]),
        ("auto:hue:angle=3", ["no key 'angle'", "degrees"]),
        ("auto:posterize:levels=x", ["levels='x'", "int"]),
        ("blur", ["auto:<name>", "instruct:<text>"]),
        ("instruct:add snow", ["--edit-model", "timbrooks/instruct-pix2pix"]),
        ("auto:colortransfer:ref=missing.png", ["missing.png", "does not exist"]),
    ],
)
def test_autoedit_bad_specs_exit_2_with_one_clear_line_and_no_output(tmp_path, photo, spec, words):
    before = snapshot(tmp_path)
    result = run("autoedit", photo, spec, "-o", tmp_path / "out.png")
    assert_refused(result, before, tmp_path, *words)


def test_autoedit_with_an_empty_model_folder_exits_2(tmp_path, photo):
    (tmp_path / "model").mkdir()
    before = snapshot(tmp_path)
    result = run("autoedit", photo, "img2img:a painting", "--edit-model", tmp_path / "model", "-o", tmp_path / "o.png")
    assert_refused(result, before, tmp_path, "no model_index.json")


def test_unreadable_and_missing_images_exit_2_without_output(tmp_path):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    before = snapshot(tmp_path)
    assert_refused(run("autoedit", bad, "auto:sepia", "-o", tmp_path / "o.png"), before, tmp_path, str(bad))
    assert_refused(run("annotate", bad, "--kind", "sketch", "-o", tmp_path / "o.png"), before, tmp_path, str(bad))
    missing = tmp_path / "nope.png"
    assert_refused(run("gallery", missing, "-o", tmp_path / "g.png"), before, tmp_path, str(missing))
    assert_refused(run("autoedit", tmp_path / "coffee.png", "auto:sepia", "-o", tmp_path / "o.txt"), before,
                   tmp_path, ".png")


def test_annotate_sketch_writes_black_lines_on_white(tmp_path, photo):
    out = tmp_path / "sketch.png"
    result = run("annotate", photo, "--kind", "sketch", "--method", "canny", "-o", out)
    assert result.exit_code == 0, result.output
    sketch = load_image(out)
    assert np.array_equal(sketch, convert(load_image(photo), "sketch", method="canny"))
    assert (sketch > 200).mean() > 0.8


def test_annotate_boxes_from_json_draws_them_at_their_coordinates(tmp_path, photo):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"label": "cup", "x0": 150, "y0": 40, "x1": 420, "y1": 300}]))
    out = tmp_path / "boxes.png"
    assert run("annotate", photo, "--kind", "boxes", "--boxes", boxes, "-o", out).exit_code == 0
    drawn = load_image(out)
    assert drawn.shape == load_image(photo).shape
    assert np.array_equal(drawn[40, 200], label_color("cup")) and np.array_equal(drawn[299, 419], label_color("cup"))
    assert not drawn[39, 200].any() and not drawn[150, 300].any()


def test_annotate_motion_boxes_of_a_real_clip_find_the_pedestrians(tmp_path, real_video):
    out = tmp_path / "moving.png"
    result = run("annotate", real_video("vtest.avi"), "--kind", "boxes", "--method", "motion", "-o", out)
    assert result.exit_code == 0, result.output
    drawn = load_image(out).any(axis=2)
    assert 0.002 < drawn.mean() < 0.1  # a few person-sized outlines, not the whole frame
    count = cv2.connectedComponents(drawn.astype(np.uint8))[0] - 1
    assert count >= 3  # several walkers are boxed
    assert not drawn[int(0.75 * drawn.shape[0]):].any()  # nothing on the empty lawn at the bottom


def test_annotate_without_weights_exits_2_naming_the_files(tmp_path, photo):
    before = snapshot(tmp_path)
    result = run("annotate", photo, "--kind", "pose", "-o", tmp_path / "pose.png")
    assert_refused(result, before, tmp_path, "--annotator-dir", "body_pose_model.pth", "facenet.pth")
    empty = tmp_path / "annotators"
    empty.mkdir()
    before = snapshot(tmp_path)
    result = run("annotate", photo, "--kind", "depth", "--annotator-dir", empty, "-o", tmp_path / "d.png")
    assert_refused(result, before, tmp_path, str(empty), "dpt_hybrid-midas-501f0c75.pt")


def test_annotate_motion_on_an_image_and_boxes_without_source_exit_2(tmp_path, photo):
    before = snapshot(tmp_path)
    assert_refused(run("annotate", photo, "--kind", "boxes", "--method", "motion", "-o", tmp_path / "b.png"),
                   before, tmp_path, "video")
    assert_refused(run("annotate", photo, "--kind", "boxes", "-o", tmp_path / "b.png"), before, tmp_path, "--boxes")


def test_gallery_has_one_tile_per_weight_free_edit_and_converter(tmp_path, photo):
    out = tmp_path / "gallery.png"
    ref = save_image(tmp_path / "cat.png", data.chelsea())
    result = run("gallery", photo, "--ref", ref, "-o", out)
    assert result.exit_code == 0, result.output
    sheet = load_image(out)
    tiles = 1 + len(EDITS) + len(WEIGHT_FREE_CONVERSIONS)
    rows = -(-tiles // 4)
    # The 600x400 photo is edited at 512x341 and shown as 256x170 thumbnails, 4 px apart, 4 columns.
    assert sheet.shape == (rows * (170 + 4) + 4, 4 * (256 + 4) + 4, 3)


@pytest.mark.parametrize("command", ["autoedit", "annotate", "gallery"])
def test_help_ends_with_a_working_example(tmp_path, command, monkeypatch):
    help_text = run(command, "--help").stdout
    example = help_text.strip().splitlines()[-1].strip()
    assert example.startswith(f"pdedit {command} ")
    args = shlex.split(example)[1:]
    monkeypatch.chdir(tmp_path)
    save_image(tmp_path / "photo.png", data.coffee())  # the examples read photo.png
    result = run(*args)
    assert result.exit_code == 0, result.output
