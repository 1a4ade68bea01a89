"""`pdedit model`, `pdedit generate` and `pdedit story` end to end on the tiny model; story chaining."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pdedit.cli import cli
from pdedit.video import probe, save_image

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two 64x64 instruction images (a bright and a dark gradient) and a 96x64 one (other aspect)."""
    folder = tmp_path_factory.mktemp("images")
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    a = np.stack([np.tile(ramp, (64, 1))] * 3, axis=-1)
    b = 255 - a
    wide = np.zeros((64, 96, 3), np.uint8)
    wide[:, :48] = 200
    paths = {"a": folder / "a.png", "b": folder / "b.png", "wide": folder / "wide.png"}
    for key, img in (("a", a), ("b", b), ("wide", wide)):
        save_image(paths[key], img)
    return paths


def test_model_init_tiny_writes_a_loadable_folder_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "m"
    result = _invoke("model", "init", "--tiny", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "model_index.json").is_file() and list((out / "unet").glob("*.safetensors"))
    again = _invoke("model", "init", "--tiny", str(out))
    assert again.exit_code == 2 and "--force" in again.output
    assert _invoke("model", "init", "--tiny", "--force", str(out)).exit_code == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_model_init_needs_exactly_one_source(tmp_path):
    assert _invoke("model", "init", str(tmp_path / "m")).exit_code == 2
    both = _invoke("model", "init", "--tiny", "--from-t2v", "x", str(tmp_path / "m"))
    assert both.exit_code == 2 and "exactly one" in both.output
    assert not (tmp_path / "m").exists()


def test_model_info_reports_components_and_sizes(tiny_model_dir):
    result = _invoke("model", "info", str(tiny_model_dir), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["frames"] == 8 and info["size"] == "64x64" and info["unet_in_channels"] == 8
    assert info["components"]["unet"]["class"] == "PixelDanceUNet"
    assert info["components"]["unet"]["parameters"] > 100_000
    text = _invoke("model", "info", str(tiny_model_dir)).output
    assert "PixelDanceUNet" in text and "parameters" in text


def _save_tiny_t2v(folder):
    """A tiny diffusers text-to-video folder (UNet with C in), written component by component."""
    from diffusers import UNet3DConditionModel

    from pdedit.model_init import build_tiny_pipeline
    from pdedit.models import tiny_unet_config

    pipe = build_tiny_pipeline(seed=1)
    torch.manual_seed(2)
    unet = UNet3DConditionModel(**{**tiny_unet_config(), "in_channels": 4})
    for name in ("vae", "text_encoder", "tokenizer", "scheduler"):
        getattr(pipe, name).save_pretrained(folder / name)
    unet.save_pretrained(folder / "unet")
    index = {"_class_name": "TextToVideoSDPipeline", "_diffusers_version": "0.42.1",
             "unet": ["diffusers", "UNet3DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "DDIMScheduler"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    return unet


def test_model_init_from_t2v_widens_conv_in_and_keeps_components(tmp_path):
    from pdedit.engines.pixeldance import load_pipeline

    src = tmp_path / "t2v"
    unet = _save_tiny_t2v(src)
    result = _invoke("model", "init", "--from-t2v", str(src), str(tmp_path / "pd"))
    assert result.exit_code == 0, result.output
    pipe = load_pipeline(tmp_path / "pd")
    assert pipe.unet.config.in_channels == 8 and pipe.config.num_frames == 16
    assert torch.equal(pipe.unet.conv_in.weight[:, :4], unet.conv_in.weight)
    assert pipe.unet.conv_in.weight[:, 4:].abs().sum() == 0
    assert torch.equal(pipe.unet.conv_out.weight, unet.conv_out.weight)


def test_loading_a_t2v_folder_as_a_model_says_to_convert_it(tmp_path, images):
    src = tmp_path / "t2v"
    _save_tiny_t2v(src)
    out = tmp_path / "o.mp4"
    result = _invoke("generate", "--model", str(src), "--prompt", "x", "--first", str(images["a"]), "-o", str(out))
    assert result.exit_code == 2 and "--from-t2v" in result.output
    assert not out.exists()


def test_model_init_from_missing_t2v_is_exit_2(tmp_path):
    result = _invoke("model", "init", "--from-t2v", str(tmp_path / "none"), str(tmp_path / "pd"))
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "pd").exists()


def test_generate_writes_the_requested_clip_and_preview(tiny_model_dir, images, tmp_path):
    out, sheet = tmp_path / "out.mp4", tmp_path / "sheet.png"
    result = _invoke("generate", "--model", str(tiny_model_dir), "--prompt", "a slow pan", "--first",
                     str(images["a"]), "--last", str(images["b"]), "--tau", "0.5", "--steps", "2",
                     "--frames", "5", "--fps", "10", "--size", "64x64", "--scheduler", "euler",
                     "--preview", str(sheet), "-o", str(out))
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info.width, info.height, info.frame_count, info.fps) == (64, 64, 5, 10)
    assert sheet.is_file()


def test_generate_same_seed_same_video(tiny_model_dir, images, tmp_path):
    from pdedit.video import iter_frames

    outs = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        out = tmp_path / f"{name}.mp4"
        result = _invoke("generate", "--model", str(tiny_model_dir), "--prompt", "p", "--first", str(images["a"]),
                         "--steps", "2", "--frames", "3", "--seed", seed, "-o", str(out))
        assert result.exit_code == 0, result.output
        outs.append(np.stack(list(iter_frames(out))).astype(int))
    assert np.array_equal(outs[0], outs[1])
    assert np.abs(outs[0] - outs[2]).max() > 0


def test_generate_crops_an_image_of_another_aspect_to_the_size(tiny_model_dir, images, tmp_path):
    out = tmp_path / "wide.mp4"
    result = _invoke("generate", "--model", str(tiny_model_dir), "--prompt", "p", "--first", str(images["wide"]),
                     "--steps", "1", "--frames", "2", "--size", "64x64", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert (probe(out).width, probe(out).height) == (64, 64)


@pytest.mark.parametrize("broken", ["missing", "empty", "bad_json"])
def test_generate_with_missing_or_malformed_model_is_exit_2_without_output(tiny_model_dir, images, tmp_path, broken):
    model = tmp_path / "model"
    if broken != "missing":
        model.mkdir()
    if broken == "bad_json":
        (model / "model_index.json").write_text("{oops")
    out = tmp_path / "o.mp4"
    result = _invoke("generate", "--model", str(model), "--prompt", "x", "--first", str(images["a"]), "-o", str(out))
    assert result.exit_code == 2
    assert "pdedit model init" in result.output
    assert not out.exists()


def test_generate_bad_inputs_are_exit_2(tiny_model_dir, images, tmp_path):
    out = tmp_path / "o.mp4"
    base = ["generate", "--model", str(tiny_model_dir), "--prompt", "x", "-o", str(out)]
    missing = _invoke(*base, "--first", str(tmp_path / "none.png"))
    assert missing.exit_code == 2 and "none.png" in missing.output
    size = _invoke(*base, "--first", str(images["a"]), "--size", "60x60")
    assert size.exit_code == 2 and "multiples of 8" in size.output
    out.write_bytes(b"keep")
    exists = _invoke(*base, "--first", str(images["a"]))
    assert exists.exit_code == 2 and "--force" in exists.output and out.read_bytes() == b"keep"


def _storyboard(folder, images, text=None):
    path = folder / "story.yaml"
    path.write_text(text if text is not None else (
        f"first: {images['a']}\nframes: 4\nsteps: 2\nfps: 8\n"
        f"shots:\n  - prompt: a boat drifts left\n    last: {images['b']}\n    tau: 0.5\n"
        f"  - prompt: the boat sinks\n    frames: 3\n"
    ))
    return path


def test_story_chains_shots_into_one_video(tiny_model_dir, images, tmp_path):
    out, sheet = tmp_path / "story.mp4", tmp_path / "story.png"
    result = _invoke("story", str(_storyboard(tmp_path, images)), "--model", str(tiny_model_dir),
                     "--preview", str(sheet), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert probe(out).frame_count == 4 + (3 - 1)  # the join frame is not repeated
    assert sheet.is_file()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("shots: []\n", "shots"),
        ("first: a.png\nshots:\n  - last: b.png\n", "shots\\[0\\] needs a 'prompt'"),
        ("first: a.png\nshots:\n  - prompt: x\n    colour: red\n", "colour"),
        ("first: a.png\ntau: 2\nshots:\n  - prompt: x\n", "tau"),
        ("shots:\n  - prompt: x\n", "no 'first'"),
        ("first: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_storyboards_are_exit_2_naming_the_entry(tiny_model_dir, images, tmp_path, text, match):
    import re

    out = tmp_path / "o.mp4"
    (tmp_path / "a.png").write_bytes(images["a"].read_bytes())
    result = _invoke("story", str(_storyboard(tmp_path, images, text)), "--model", str(tiny_model_dir),
                     "-o", str(out))
    assert result.exit_code == 2
    assert re.search(match, result.output), result.output
    assert not out.exists()


def test_generate_long_gives_each_shot_the_previous_last_frame(tiny_model_dir, images):
    from pdedit.generation import open_generator
    from pdedit.story import Shot, generate_long
    from pdedit.video import load_image

    gen = open_generator("auto", tiny_model_dir)
    pipe = gen.engine.pipe
    firsts = []
    call = type(pipe).__call__

    class Spy(type(pipe)):
        def __call__(self, *args, **kwargs):
            firsts.append(kwargs["first_frame"])
            return call(self, *args, **kwargs)

    pipe.__class__ = Spy
    shots = [Shot("one"), Shot("two", last=load_image(images["b"])), Shot("three", num_frames=2)]
    video = list(generate_long(gen, shots, load_image(images["a"]), frames=3, steps=1))
    assert len(video) == 3 + 2 + 1
    assert np.array_equal(firsts[0], load_image(images["a"]))
    assert np.array_equal(firsts[1], video[2])  # last frame of shot 1
    assert np.array_equal(firsts[2], video[4])  # last frame of shot 2
