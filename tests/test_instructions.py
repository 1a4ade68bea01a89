"""pdedit.instructions: auto edits, spec parsing, sketch / pose / boxes / depth converters, learned edits."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from pdedit.errors import BadInput, MissingModel, Unsupported
from pdedit.instructions import CONVERTERS, EDITS, apply_edit, convert, is_edit_spec, parse_edit_spec
from pdedit.instructions.annotators import ANNOTATORS, load_annotator
from pdedit.instructions.boxes import label_color, motion_boxes
from pdedit.video import iter_frames, save_image

# Torch-heavy tests here (detector networks, tiny pipelines) run faster on one thread on this shared CPU.
pytestmark = pytest.mark.usefixtures("single_thread_torch")

# ---------------------------------------------------------------- real photos and frames


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    """Real photos shipped with scikit-image (RGB uint8)."""
    return {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}


@pytest.fixture(scope="module")
def walk_frame(real_video) -> np.ndarray:
    """One real frame of walk.mkv (skips when the clip is absent)."""
    return next(iter_frames(real_video("walk.mkv"), [10]))


def _hsv(frame: np.ndarray) -> np.ndarray:
    """Float HSV with H in degrees [0, 360), S and V in [0, 1]."""
    return cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)


def _circular_mean_deg(angles: np.ndarray) -> float:
    """Mean of angles in degrees, on the circle."""
    rad = np.deg2rad(angles)
    return float(np.rad2deg(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())))


def _local_contrast(frame: np.ndarray) -> float:
    """Mean absolute difference between luminance and its local (9 px) mean."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(gray - cv2.blur(gray, (9, 9))).mean())


# ---------------------------------------------------------------- auto edits


@pytest.mark.parametrize("name", list(EDITS))
def test_every_auto_edit_is_deterministic_and_changes_real_photos(name, photos, tmp_path):
    ref = tmp_path / "ref.png"
    save_image(ref, photos["chelsea"])
    spec = f"auto:{name}:ref={ref}" if name == "colortransfer" else f"auto:{name}"
    for photo in (photos["coffee"], photos["astronaut"]):
        first, second = apply_edit(photo, spec), apply_edit(photo, spec)
        assert first.shape == photo.shape and first.dtype == np.uint8
        assert np.array_equal(first, second)
        assert np.abs(first.astype(int) - photo).mean() > 3.0


def test_auto_edits_run_on_a_real_video_frame(walk_frame):
    for name in EDITS:
        if name == "colortransfer":
            continue
        out = apply_edit(walk_frame, f"auto:{name}")
        assert out.shape == walk_frame.shape and not np.array_equal(out, walk_frame)


def test_sepia_maps_every_pixel_to_one_warm_hue(photos):
    out = apply_edit(photos["astronaut"], "auto:sepia")
    hsv = _hsv(out)
    lit = hsv[..., 2] > 0.25  # rounding makes the hue of near-black pixels meaningless
    hues = hsv[..., 0][lit]
    assert lit.mean() > 0.5
    assert 20.0 < np.median(hues) < 50.0  # orange-brown
    assert np.percentile(np.abs(hues - np.median(hues)), 99) < 4.0


@pytest.mark.parametrize("degrees", [30.0, 90.0, -45.0])
def test_hue_shift_moves_the_mean_hue_by_the_asked_degrees(photos, degrees):
    photo = photos["coffee"]
    out = apply_edit(photo, f"auto:hue:degrees={degrees}")
    src, dst = _hsv(photo), _hsv(out)
    colourful = (src[..., 1] > 0.3) & (src[..., 2] > 0.2)
    shift = _circular_mean_deg(dst[..., 0][colourful] - src[..., 0][colourful])
    assert abs(shift - degrees) < 2.0
    assert np.abs(dst[..., 2] - src[..., 2])[colourful].mean() < 0.01  # value kept


@pytest.mark.parametrize("levels", [2, 4, 8])
def test_posterize_leaves_at_most_the_asked_number_of_levels(photos, levels):
    photo = photos["chelsea"]
    out = apply_edit(photo, f"auto:posterize:levels={levels}")
    for c in range(3):
        assert len(np.unique(photo[..., c])) > 100
        assert len(np.unique(out[..., c])) <= levels


def test_night_darkens_and_cools(photos):
    for photo in photos.values():
        out = apply_edit(photo, "auto:night").astype(float)
        src = photo.astype(float)
        assert out.mean() < 0.6 * src.mean()
        blue_red = out[..., 2].mean() / out[..., 0].mean()
        assert blue_red > 1.3 * (src[..., 2].mean() / src[..., 0].mean())


def test_contrast_raises_local_contrast_of_a_flat_photo(photos):
    flat = (photos["coffee"].astype(np.float32) * 0.4 + 100).astype(np.uint8)  # washed out
    out = apply_edit(flat, "auto:contrast")
    assert _local_contrast(out) > 1.5 * _local_contrast(flat)
    stronger = apply_edit(flat, "auto:contrast:clip=6")
    assert _local_contrast(stronger) > _local_contrast(out)


def test_whitebalance_removes_a_colour_cast(photos):
    photo = photos["astronaut"]
    cast = np.clip(photo * np.array([1.0, 0.9, 0.6]), 0, 255).astype(np.uint8)
    balanced = apply_edit(cast, "auto:whitebalance")
    # The same scene under two lights balances to nearly the same colours (chromaticities).
    chroma = lambda im: im.astype(float) / (im.astype(float).sum(axis=2, keepdims=True) + 1.0)  # noqa: E731
    lit = photo.min(axis=2) > 40
    reference = apply_edit(photo, "auto:whitebalance")
    assert np.abs(chroma(balanced) - chroma(reference))[lit].mean() < 0.01
    assert np.abs(chroma(cast) - chroma(reference))[lit].mean() > 0.05
    before, after = cast.reshape(-1, 3).mean(0), balanced.reshape(-1, 3).mean(0)
    assert np.ptp(after) / after.mean() < 0.5 * np.ptp(before) / before.mean()


def test_colortransfer_takes_the_reference_colours(photos, tmp_path):
    ref = tmp_path / "cat.png"
    save_image(ref, photos["chelsea"])
    src = photos["coffee"]
    out = apply_edit(src, f"auto:colortransfer:ref={ref}")
    lab = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(float)  # noqa: E731
    target = lab(photos["chelsea"]).mean(0)
    assert np.linalg.norm(lab(out).mean(0) - target) < 0.3 * np.linalg.norm(lab(src).mean(0) - target)
    half = apply_edit(src, f"auto:colortransfer:ref={ref},strength=0.5")
    assert np.abs(half.astype(int) - src).mean() < np.abs(out.astype(int) - src).mean()


def test_cartoon_flattens_colours_and_pencil_is_grey(photos):
    photo = photos["coffee"]
    toon = apply_edit(photo, "auto:cartoon")
    colours = lambda im: len(np.unique(im.reshape(-1, 3) // 4, axis=0))  # noqa: E731
    assert colours(toon) < 0.5 * colours(photo)
    sketchy = apply_edit(photo, "auto:pencil")
    assert np.array_equal(sketchy[..., 0], sketchy[..., 1]) and np.array_equal(sketchy[..., 1], sketchy[..., 2])
    assert sketchy.mean() > 180  # paper-white with strokes


def test_stylize_paints_with_fewer_colours(photos):
    colours = lambda im: len(np.unique(im.reshape(-1, 3) // 4, axis=0))  # noqa: E731
    for photo in (photos["chelsea"], photos["coffee"]):
        assert colours(apply_edit(photo, "auto:stylize")) < 0.6 * colours(photo)


# ---------------------------------------------------------------- spec parsing


def test_spec_parsing_converts_keys_to_the_edit_parameter_types():
    spec = parse_edit_spec("auto:hue:degrees=45")
    assert (spec.kind, spec.name, spec.params) == ("auto", "hue", {"degrees": 45.0})
    assert parse_edit_spec("auto:posterize:levels=3").params == {"levels": 3}
    assert parse_edit_spec("instruct:make it snow: heavy").text == "make it snow: heavy"
    assert parse_edit_spec("img2img:a watercolour").kind == "img2img"
    assert str(parse_edit_spec("auto:contrast:clip=3,tiles=4")) == "auto:contrast:clip=3.0,tiles=4"


@pytest.mark.parametrize(
    "spec, words",
    [
        ("auto:sepa", ["unknown edit 'sepa'", "auto:sepia", "auto:hue", "degrees"]),
        ("auto:hue:angle=3", ["no key 'angle'", "degrees"]),
        ("auto:posterize:levels=many", ["levels='many'", "int"]),
        ("auto:hue:degrees", ["not key=value"]),
        ("instruct:", ["no text"]),
        ("magic:foo", ["auto:", "instruct:", "img2img:"]),
        ("auto:posterize:levels=1", ["2 <= levels"]),
    ],
)
def test_bad_specs_raise_bad_input_naming_the_valid_choices(spec, words):
    with pytest.raises(BadInput) as err:
        apply_edit(np.zeros((8, 8, 3), np.uint8), spec)
    for word in words:
        assert word in str(err.value)


def test_is_edit_spec_tells_specs_from_image_paths():
    assert is_edit_spec("auto:cartoon") and is_edit_spec("instruct:add a hat") and is_edit_spec("img2img:x")
    assert not is_edit_spec("edits/first.png") and not is_edit_spec("/tmp/auto.png") and not is_edit_spec("C:\\a.png")


def test_apply_edit_rejects_a_frame_that_is_not_rgb_uint8():
    with pytest.raises(BadInput, match="RGB uint8"):
        apply_edit(np.zeros((8, 8), np.uint8), "auto:sepia")
    with pytest.raises(BadInput, match="RGB uint8"):
        convert(np.zeros((8, 8, 3), np.float32), "sketch")


# ---------------------------------------------------------------- sketch


@pytest.mark.parametrize("method", ["xdog", "canny"])
def test_sketch_is_mostly_white_with_dark_lines_along_strong_edges(photos, method):
    for photo in (photos["astronaut"], photos["coffee"]):
        sketch = convert(photo, "sketch", method=method)
        assert sketch.shape == photo.shape
        ink = sketch[..., 0] < 128
        assert 0.005 < ink.mean() < 0.2  # mostly white paper
        gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32)
        grad = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        strong = grad > np.percentile(grad, 90)
        near_strong = cv2.dilate(strong.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        near_ink = cv2.dilate(ink.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert ink[near_strong].mean() > 5 * ink[~near_strong].mean()  # ink sits on strong edges
        assert near_ink[strong].mean() > 0.5  # and most strong edges get a line


def test_sketch_of_a_real_video_frame_is_mostly_white(walk_frame):
    sketch = convert(walk_frame, "sketch")
    assert (sketch > 200).mean() > 0.8 and (sketch < 128).mean() > 0.002


def test_sketch_default_is_xdog_and_unknown_method_is_bad_input(photos):
    photo = photos["chelsea"]
    assert np.array_equal(convert(photo, "sketch"), convert(photo, "sketch", method="xdog"))
    with pytest.raises(BadInput, match="xdog"):
        convert(photo, "sketch", method="pencil")


def test_image_kind_returns_the_frame_and_unknown_kind_is_bad_input(photos):
    photo = photos["chelsea"]
    assert np.array_equal(convert(photo, "image"), photo)
    with pytest.raises(BadInput, match="sketch"):
        convert(photo, "segmentation")
    assert set(CONVERTERS) == {"image", "sketch", "pose", "boxes", "depth"}


# ---------------------------------------------------------------- boxes


def test_box_json_renders_at_the_given_coordinates_in_the_label_colour(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps([
        {"label": "dog", "x0": 10, "y0": 20, "x1": 60, "y1": 50},
        {"label": "ball", "x0": 70, "y0": 5, "x1": 90, "y1": 40, "color": "#ff8000"},
    ]))
    frame = np.full((64, 100, 3), 200, np.uint8)
    out = convert(frame, "boxes", boxes=str(path))
    dog = np.array(label_color("dog"))
    assert np.array_equal(out[20, 10], dog) and np.array_equal(out[49, 59], dog)  # corners inside
    assert np.array_equal(out[35, 10], dog) and np.array_equal(out[20, 35], dog)  # edges
    assert not out[19, 10].any() and not out[20, 9].any() and not out[50, 59].any()  # nothing outside
    assert not out[35, 35].any()  # hollow
    assert np.array_equal(out[5, 80], [255, 128, 0])
    assert np.array_equal(convert(frame, "boxes", boxes=str(path)), out)


def test_label_colours_are_deterministic_and_distinct():
    assert label_color("person") == label_color("person") == (lambda: label_color("person"))()
    colours = {label_color(name) for name in ["person", "car", "dog", "cat", "tree"]}
    assert len(colours) == 5
    assert all(max(c) == 255 for c in colours)  # bright on black


def test_box_json_with_width_and_height_is_scaled_to_the_frame(tmp_path):
    boxes = {"width": 200, "height": 100, "boxes": [{"label": "a", "x0": 100, "y0": 50, "x1": 200, "y1": 100}]}
    out = convert(np.zeros((50, 100, 3), np.uint8), "boxes", boxes=boxes)
    assert out[25, 50].any() and out[49, 99].any() and not out[24, 49].any()


@pytest.mark.parametrize(
    "content, words",
    [
        ("[{\"label\": \"a\", \"x0\": 1, \"y0\": 1, \"x1\": 5}]", ["lacks y1"]),
        ("[{\"label\": \"a\", \"x0\": 9, \"y0\": 1, \"x1\": 5, \"y1\": 4}]", ["x0 < x1"]),
        ("[{\"label\": \"a\", \"x0\": 500, \"y0\": 1, \"x1\": 600, \"y1\": 4}]", ["outside", "64x64"]),
        ("[{\"label\": \"a\", \"x0\": 1, \"y0\": 1, \"x1\": 5, \"y1\": 4, \"color\": \"red\"}]", ["color"]),
        ("not json", ["not valid JSON"]),
    ],
)
def test_bad_box_files_raise_bad_input_naming_the_problem(tmp_path, content, words):
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(BadInput) as err:
        convert(np.zeros((64, 64, 3), np.uint8), "boxes", boxes=path)
    assert str(path) in str(err.value)
    for word in words:
        assert word in str(err.value)


def _moving_square_clip(num: int = 20, size: int = 40) -> tuple[list[np.ndarray], tuple[int, int, int, int]]:
    """A static real-photo background with a grey square moving right; returns frames and its last box."""
    background = cv2.resize(data.coffee(), (160, 120), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(num):
        frame = background.copy()
        x, y = 5 + i * 5, 40
        frame[y:y + size, x:x + size] = (40, 200, 90)
        frames.append(frame)
    return frames, (x, y, x + size, y + size)


def test_motion_boxes_find_the_moving_square_in_a_synthetic_clip():
    frames, (x0, y0, x1, y1) = _moving_square_clip()
    found = motion_boxes(frames)
    assert found, "no moving object found"
    b = found[0]
    inter = max(0, min(b.x1, x1) - max(b.x0, x0)) * max(0, min(b.y1, y1) - max(b.y0, y0))
    union = (b.x1 - b.x0) * (b.y1 - b.y0) + (x1 - x0) * (y1 - y0) - inter
    assert inter / union > 0.7
    drawn = convert(frames[-1], "boxes", video_frames=frames)  # motion is the default with frames
    assert drawn[y0 - 2:y0 + 3, x0 + 20].any() and not drawn[y0 + 20, x0 + 20].any() and not drawn[5, 5].any()


def test_static_clip_has_no_moving_boxes():
    frame = cv2.resize(data.coffee(), (160, 120))
    assert motion_boxes([frame] * 10) == []


def test_lbp_cascade_finds_the_astronauts_face(photos):
    box_pixels = convert(photos["astronaut"], "boxes", method="faces").any(axis=2)
    # The face is around (220, 115) in this photo: a box must surround it.
    assert box_pixels[115, 160:220].any() and box_pixels[115, 220:290].any()
    assert box_pixels[40:115, 220].any() and box_pixels[115:180, 220].any()


def test_boxes_without_a_source_are_bad_input(photos):
    with pytest.raises(BadInput, match="--boxes"):
        convert(photos["chelsea"], "boxes")


# ---------------------------------------------------------------- controlnet-aux detectors from local files


def _networks(name: str) -> dict[str, torch.nn.Module]:
    """file name -> an (empty, meta-device) network of the architecture that file holds."""
    from pdedit.instructions.annotators import import_quietly

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm renames MiDaS's backbone with a warning
        if name == "hed":
            return {"ControlNetHED.pth": import_quietly("controlnet_aux.hed").ControlNetHED_Apache2()}
        if name == "pidinet":
            return {"table5_pidinet.pth": import_quietly("controlnet_aux.pidi.model").pidinet()}
        if name == "lineart":
            gen = import_quietly("controlnet_aux.lineart").Generator
            return {"sk_model.pth": gen(3, 1, 3), "sk_model2.pth": gen(3, 1, 3)}
        if name == "openpose":
            model = import_quietly("controlnet_aux.open_pose.model")
            face = import_quietly("controlnet_aux.open_pose.face")
            return {"body_pose_model.pth": model.bodypose_model(), "hand_pose_model.pth": model.handpose_model(),
                    "facenet.pth": face.FaceNet()}
        if name == "midas":
            dpt = import_quietly("controlnet_aux.midas.midas.dpt_depth")
            return {"dpt_hybrid-midas-501f0c75.pt": dpt.DPTDepthModel(path=None, backbone="vitb_rn50_384",
                                                                       non_negative=True)}
    raise KeyError(name)


def _small_random_state(net: torch.nn.Module, seed: int, scale: float = 0.1) -> dict[str, torch.Tensor]:
    """A state dict of the right shapes whose tensors are views of small random rows (tiny files)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, t in net.state_dict().items():
        if not t.dtype.is_floating_point:
            state[key] = torch.zeros(t.shape, dtype=t.dtype)
            continue
        row = torch.randn(t.shape[-1] if t.dim() else 1, generator=gen) * scale
        state[key] = row.expand(t.shape) if t.dim() else row[0].clone()
    return state


def write_annotator_files(folder: Path, name: str, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """Write random weights for detector ``name`` under the file names it reads; return what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for filename, net in _networks(name).items():
        # OpenPose's grouping loops over every heatmap peak: zero weights give none, so it stays fast.
        state = _small_random_state(net, seed, scale=0.0 if name == "openpose" else 0.1)
        if filename in ("body_pose_model.pth", "hand_pose_model.pth"):
            # controlnet-aux maps file keys to model keys by dropping the first name (util.transfer).
            state = {k.split(".", 1)[1]: v for k, v in state.items()}
        payload = {"state_dict": state} if name == "pidinet" else state
        torch.save(payload, folder / filename)
        written[filename] = state
    return written


@pytest.fixture(scope="module")
def annotator_dir(tmp_path_factory) -> Path:
    """A folder with random HED, PidiNet, Lineart, OpenPose and MiDaS weights under the expected names."""
    folder = tmp_path_factory.mktemp("annotators")
    for name in ANNOTATORS:
        write_annotator_files(folder, name)
    return folder


@pytest.mark.parametrize("method", ["hed", "pidinet", "lineart"])
def test_sketch_detectors_load_from_a_local_folder(annotator_dir, method, photos):
    small = cv2.resize(photos["astronaut"], (64, 48), interpolation=cv2.INTER_AREA)
    other = cv2.resize(photos["coffee"], (64, 48), interpolation=cv2.INTER_AREA)
    out = convert(small, "sketch", method=method, annotator_dir=annotator_dir)
    assert out.shape == small.shape
    # the detector ran on the image: another photo gives another sketch, and the sketch is not blank
    assert not np.array_equal(out, convert(other, "sketch", method=method, annotator_dir=annotator_dir))
    assert out.min() < out.max()


def test_controlnet_aux_is_imported_only_on_use_and_quietly():
    code = (
        "import sys, pdedit.instructions\n"
        "assert 'controlnet_aux' not in sys.modules and 'torch' not in sys.modules, 'imported eagerly'\n"
        "from pdedit.instructions.annotators import import_quietly\n"
        "import_quietly('controlnet_aux.hed')\n"
        "assert 'controlnet_aux' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


def test_loaded_detector_holds_the_weights_from_the_folder(tmp_path):
    written = write_annotator_files(tmp_path, "hed", seed=3)["ControlNetHED.pth"]
    detector = load_annotator("hed", tmp_path)
    loaded = detector.netNetwork.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in written.items())


@pytest.mark.parametrize("kind", ["pose", "depth"])
def test_openpose_and_midas_load_from_a_local_folder(annotator_dir, photos, kind):
    small = cv2.resize(photos["astronaut"], (64, 64), interpolation=cv2.INTER_AREA)
    out = convert(small, kind, annotator_dir=annotator_dir)
    assert out.shape == small.shape  # random weights: what they draw carries no meaning, only the layout


@pytest.mark.parametrize(
    "kind, method, files",
    [
        ("sketch", "hed", ["ControlNetHED.pth"]),
        ("sketch", "lineart", ["sk_model.pth", "sk_model2.pth"]),
        ("pose", None, ["body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"]),
        ("depth", None, ["dpt_hybrid-midas-501f0c75.pt"]),
    ],
)
def test_missing_weights_are_missing_model_naming_the_expected_files(tmp_path, photos, kind, method, files):
    frame = photos["chelsea"]
    with pytest.raises(MissingModel) as err:
        convert(frame, kind, method=method, annotator_dir=tmp_path)
    for f in files:
        assert f in str(err.value)
    with pytest.raises(MissingModel, match="--annotator-dir"):
        convert(frame, kind, method=method)


def test_a_partly_filled_folder_names_the_missing_file(tmp_path):
    write_annotator_files(tmp_path, "lineart")
    (tmp_path / "sk_model2.pth").unlink()
    with pytest.raises(MissingModel, match=r"lacks sk_model2\.pth"):
        load_annotator("lineart", tmp_path)


def test_a_corrupt_weight_file_is_missing_model(tmp_path):
    (tmp_path / "table5_pidinet.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(MissingModel, match="could not load pidinet"):
        load_annotator("pidinet", tmp_path)


def test_mediapipe_pose_without_mediapipe_is_unsupported(photos):
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        with pytest.raises(Unsupported, match=r"pdedit\[pose\]"):
            convert(photos["astronaut"], "pose", method="mediapipe")
    else:
        out = convert(photos["astronaut"], "pose", method="mediapipe")
        assert out.shape == photos["astronaut"].shape and out.any()


def test_openpose_drawing_puts_the_skeleton_on_black():
    from pdedit.instructions.pose import draw_openpose

    points = [(0.5, 0.1), (0.5, 0.25), (0.4, 0.25), (0.35, 0.4), (0.3, 0.55), (0.6, 0.25), (0.65, 0.4),
              (0.7, 0.55), (0.45, 0.55), (0.45, 0.75), (0.45, 0.95), (0.55, 0.55), (0.55, 0.75),
              (0.55, 0.95), None, None, None, None]
    canvas = draw_openpose(points, (64, 96))
    assert canvas.shape == (96, 64, 3)
    assert canvas[int(0.25 * 96), 32].any()  # the neck is drawn
    assert not canvas[2, 2].any() and (canvas.any(axis=2)).mean() < 0.3  # on black


# ---------------------------------------------------------------- learned edits (tiny random pipelines)


def _tiny_sd_pipeline(kind: str, folder: Path) -> Path:
    """Save a tiny random InstructPix2Pix or img2img pipeline to ``folder`` (from_pretrained-able)."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionInstructPix2PixPipeline
    from diffusers import UNet2DConditionModel

    from pdedit.model_init import _tiny_text_encoder, _tiny_tokenizer, _tiny_vae

    torch.manual_seed(0)
    tokenizer = _tiny_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=8 if kind == "instruct" else 4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, cross_attention_dim=32,
        attention_head_dim=4,
    )
    parts = dict(vae=_tiny_vae(), text_encoder=_tiny_text_encoder(len(tokenizer)), tokenizer=tokenizer, unet=unet,
                 scheduler=DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                         clip_sample=False, set_alpha_to_one=False),
                 safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    cls = StableDiffusionInstructPix2PixPipeline if kind == "instruct" else StableDiffusionImg2ImgPipeline
    cls(**parts).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_edit_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random InstructPix2Pix and img2img pipelines saved to disk."""
    root = tmp_path_factory.mktemp("edit_models")
    return {kind: _tiny_sd_pipeline(kind, root / kind) for kind in ("instruct", "img2img")}


@pytest.mark.parametrize("kind", ["instruct", "img2img"])
def test_learned_edits_load_a_local_pipeline_and_are_seeded(tiny_edit_models, kind, photos):
    frame = cv2.resize(photos["coffee"], (44, 36), interpolation=cv2.INTER_AREA)  # not multiples of 8
    spec = f"{kind}:make it a winter evening"
    out = apply_edit(frame, spec, edit_model=tiny_edit_models[kind], steps=2, seed=1)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.array_equal(out, apply_edit(frame, spec, edit_model=tiny_edit_models[kind], steps=2, seed=1))
    assert not np.array_equal(out, apply_edit(frame, spec, edit_model=tiny_edit_models[kind], steps=2, seed=2))


def test_learned_edit_with_the_wrong_kind_of_model_is_missing_model(tiny_edit_models, photos):
    frame = photos["coffee"][:64, :64]
    with pytest.raises(MissingModel, match="4 input channels.*needs 8"):
        apply_edit(frame, "instruct:add snow", edit_model=tiny_edit_models["img2img"])


def test_learned_edit_without_a_model_folder_says_how_to_get_one(tmp_path, photos):
    frame = photos["coffee"][:64, :64]
    with pytest.raises(MissingModel, match="timbrooks/instruct-pix2pix"):
        apply_edit(frame, "instruct:add snow")
    with pytest.raises(MissingModel, match="no model_index.json"):
        apply_edit(frame, "img2img:a painting", edit_model=tmp_path)
