"""PixelDancePipeline on the tiny model: shapes, determinism, the tau schedule, CFG batching, SDEdit."""

from __future__ import annotations

import json
import shutil

import numpy as np
import PIL.Image
import pytest
import torch

from pdedit.conditioning import round_steps
from pdedit.errors import BadInput, MissingModel
from pdedit.engines.pixeldance import load_pipeline
from pdedit.model_init import build_tiny_pipeline
from pdedit.pipeline import (
    SCHEDULERS,
    PixelDancePipeline,
    decode_video,
    encode_video,
)
from pdedit.video import to_uint8

C = 4

pytestmark = pytest.mark.usefixtures("single_thread_torch")


@pytest.fixture()
def pipe(tiny_model_dir) -> PixelDancePipeline:
    pipe = load_pipeline(tiny_model_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _frame(seed: int, size=(64, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def _run(pipe, seed: int = 0, **kwargs):
    params = dict(
        prompt="a red ball rolls",
        first_frame=_frame(1),
        last_frame=_frame(2),
        num_frames=4,
        num_inference_steps=4,
        output_type="np",
        generator=torch.Generator().manual_seed(seed),
    )
    params.update(kwargs)
    return pipe(**params).frames


def _spy_unet(pipe, monkeypatch) -> list[torch.Tensor]:
    """Record the input of every UNet call: (batch, 2C, F, h, w)."""
    calls: list[torch.Tensor] = []
    forward = pipe.unet.forward

    def spy(sample, *args, **kwargs):
        calls.append(sample.detach().clone())
        return forward(sample, *args, **kwargs)

    monkeypatch.setattr(pipe.unet, "forward", spy)
    return calls


def test_np_output_is_float32_frames_in_unit_range(pipe):
    frames = _run(pipe)
    assert frames.shape == (1, 4, 64, 64, 3)
    assert frames.dtype == np.float32
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    assert frames.std() > 0


def test_latent_and_pil_outputs_have_model_shapes(pipe):
    latents = _run(pipe, output_type="latent")
    assert latents.shape == (1, C, 4, 8, 8)
    pil = _run(pipe, output_type="pil", width=128, height=64)
    assert len(pil) == 1 and len(pil[0]) == 4
    assert isinstance(pil[0][0], PIL.Image.Image) and pil[0][0].size == (128, 64)


def test_same_seed_same_video_other_seed_other_video(pipe):
    a, b, c = _run(pipe, seed=5), _run(pipe, seed=5), _run(pipe, seed=6)
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_defaults_come_from_the_model_folder(pipe):
    assert pipe.config.num_frames == 8 and pipe.default_size == (64, 64)
    frames = pipe("x", _frame(1), num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)).frames
    assert frames.shape == (1, 8, 64, 64, 3)


@pytest.mark.parametrize(("tau", "steps"), [(0.0, 5), (0.5, 5), (0.4, 5), (1.0, 4)])
def test_last_frame_seen_only_in_first_tau_steps(pipe, monkeypatch, tau, steps):
    calls = _spy_unet(pipe, monkeypatch)
    _run(pipe, tau=tau, num_inference_steps=steps)
    assert len(calls) == steps
    k = round_steps(tau, steps)
    seen_last = [bool(x[:, C:, -1].abs().amax() > 0) for x in calls]
    seen_first = [bool(x[:, C:, 0].abs().amax() > 0) for x in calls]
    assert seen_last == [i < k for i in range(steps)]
    assert all(seen_first)
    assert all(x[:, C:, 1:-1].abs().amax() == 0 for x in calls)  # the middle of c_image is zeros


def test_one_unet_call_per_step_with_batch_2_under_cfg(pipe, monkeypatch):
    calls = _spy_unet(pipe, monkeypatch)
    _run(pipe, guidance_scale=7.5, num_inference_steps=3)
    assert [x.shape[0] for x in calls] == [2, 2, 2]
    for x in calls:  # uncond and cond branches get the same image instructions
        assert torch.equal(x[0, C:], x[1, C:])
        assert torch.equal(x[0, :C], x[1, :C])


def test_guidance_one_runs_the_text_branch_only(pipe, monkeypatch):
    calls = _spy_unet(pipe, monkeypatch)
    _run(pipe, guidance_scale=1.0, num_inference_steps=3)
    assert [x.shape[0] for x in calls] == [1, 1, 1]


def test_guidance_changes_the_video(pipe):
    assert np.abs(_run(pipe, guidance_scale=1.0) - _run(pipe, guidance_scale=9.0)).max() > 1e-3


@pytest.mark.parametrize(("strength", "steps", "run"), [(0.5, 6, 3), (0.3, 5, 2), (0.75, 4, 3)])
def test_strength_below_one_runs_round_strength_t_steps(pipe, monkeypatch, strength, steps, run):
    calls = _spy_unet(pipe, monkeypatch)
    source = [_frame(10 + i) for i in range(4)]
    _run(pipe, source_video=source, strength=strength, num_inference_steps=steps, tau=0.5)
    assert len(calls) == run  # round(strength * T), halves up: 0.3 of 5 is 2
    seen_last = [bool(x[:, C:, -1].abs().amax() > 0) for x in calls]
    assert sum(seen_last) == round_steps(0.5, run)  # tau counts over the steps actually run


def test_low_strength_stays_closer_to_the_source(pipe):
    # Compared in latent space: the tiny VAE is random, so pixels do not round-trip.
    source = [_frame(20)] * 4
    pure = _run(pipe, num_inference_steps=6, output_type="latent")
    sdedit = _run(pipe, source_video=source, strength=0.2, num_inference_steps=6, output_type="latent")
    video = torch.from_numpy(np.stack(source)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        target = encode_video(pipe.vae, video)  # (1, C, F, h, w)
    assert (sdedit - target).abs().mean() < 0.5 * (pure - target).abs().mean()


def test_image_noise_perturbs_instruction_channels_only(pipe, monkeypatch):
    calls = _spy_unet(pipe, monkeypatch)
    _run(pipe, image_noise=0.0, num_inference_steps=1, last_frame=None)
    _run(pipe, image_noise=0.5, num_inference_steps=1, last_frame=None)
    clean, noisy = calls
    assert torch.equal(clean[:, :C], noisy[:, :C])  # same seed: same z_t
    assert (clean[:, C:, 0] - noisy[:, C:, 0]).abs().mean() > 0.1
    assert noisy[:, C:, 1:].abs().amax() == 0  # absent last frame stays an exact zero


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_samples(pipe, name):
    pipe.set_scheduler("ddim")
    ddim = _run(pipe)
    pipe.set_scheduler(name)
    assert isinstance(pipe.scheduler, SCHEDULERS[name][0])
    frames = _run(pipe)
    assert frames.shape == (1, 4, 64, 64, 3) and np.isfinite(frames).all()
    if name != "ddim":  # another sampler takes other steps from the same noise
        assert np.abs(frames - ddim).max() > 1e-4
    again = _run(pipe, source_video=[_frame(3)] * 4, strength=0.5)
    assert np.isfinite(again).all()


def test_unknown_scheduler_is_bad_input(pipe):
    with pytest.raises(BadInput, match="ddim"):
        pipe.set_scheduler("heun")


def test_callback_sees_every_step_and_can_replace_latents(pipe):
    seen = []

    def callback(p, i, t, tensors):
        seen.append(i)
        return {"latents": torch.zeros_like(tensors["latents"])}

    latents = _run(pipe, callback_on_step_end=callback, output_type="latent")
    assert seen == [0, 1, 2, 3]
    assert latents.abs().max() == 0


def test_save_load_round_trip_gives_identical_output(tiny_model_dir, tmp_path):
    built = build_tiny_pipeline(seed=0)
    built.set_progress_bar_config(disable=True)
    built.save_pretrained(tmp_path / "copy")
    loaded = load_pipeline(tmp_path / "copy")
    loaded.set_progress_bar_config(disable=True)
    assert np.array_equal(_run(built), _run(loaded))
    assert list((tmp_path / "copy" / "unet").glob("*.safetensors"))


def test_chunked_vae_decode_matches_one_chunk(pipe):
    latents = torch.randn(1, C, 5, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(decode_video(pipe.vae, latents, 2), decode_video(pipe.vae, latents, 8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tau": 1.5}, "tau"),
        ({"strength": 0.5}, "source_video"),
        ({"width": 60}, "multiples"),
        ({"num_frames": 1}, "frames"),
        ({"num_inference_steps": 0}, "steps"),
        ({"image_noise": -1.0}, "noise"),
    ],
)
def test_bad_parameters_are_bad_input(pipe, kwargs, match):
    with pytest.raises(BadInput, match=match):
        _run(pipe, **kwargs)


def test_to_uint8_converts_one_video():
    frames = np.linspace(0, 1, 2 * 4 * 4 * 3, dtype=np.float32).reshape(1, 2, 4, 4, 3)
    out = to_uint8(frames)
    assert len(out) == 2 and out[0].dtype == np.uint8 and out[0].shape == (4, 4, 3)
    assert out[0][0, 0, 0] == 0 and out[1][-1, -1, -1] == 255
    with pytest.raises(ValueError, match="one video"):
        to_uint8(np.zeros((2, 2, 4, 4, 3), np.float32))


def test_missing_model_folder_names_model_init(tmp_path):
    with pytest.raises(MissingModel, match="pdedit model init"):
        load_pipeline(tmp_path / "nope")


def _broken_copies(src, tmp_path):
    """Model folders broken in one way each."""
    cases = {}
    cases["no_index"] = tmp_path / "no_index"
    shutil.copytree(src, cases["no_index"])
    (cases["no_index"] / "model_index.json").unlink()
    cases["bad_json"] = tmp_path / "bad_json"
    shutil.copytree(src, cases["bad_json"])
    (cases["bad_json"] / "model_index.json").write_text("{not json")
    cases["no_unet"] = tmp_path / "no_unet"
    shutil.copytree(src, cases["no_unet"])
    shutil.rmtree(cases["no_unet"] / "unet")
    cases["bad_weights"] = tmp_path / "bad_weights"
    shutil.copytree(src, cases["bad_weights"])
    for f in (cases["bad_weights"] / "unet").glob("*.safetensors"):
        f.write_bytes(b"garbage")
    cases["other_class"] = tmp_path / "other_class"
    shutil.copytree(src, cases["other_class"])
    index = json.loads((cases["other_class"] / "model_index.json").read_text())
    index["_class_name"] = "TextToVideoSDPipeline"
    (cases["other_class"] / "model_index.json").write_text(json.dumps(index))
    return cases


def test_malformed_model_folders_are_missing_model_errors(tiny_model_dir, tmp_path):
    for name, folder in _broken_copies(tiny_model_dir, tmp_path).items():
        with pytest.raises(MissingModel, match="pdedit model init") as info:
            load_pipeline(folder)
        assert str(folder) in str(info.value), name


def test_loading_a_model_prints_no_progress_bars(tiny_model_dir, capfd):
    from diffusers.utils import logging as diffusers_logging

    capfd.readouterr()
    load_pipeline(tiny_model_dir)
    captured = capfd.readouterr()
    assert "Loading" not in captured.err + captured.out
    assert diffusers_logging.is_progress_bar_enabled()  # the global setting is restored afterwards


def test_load_pipeline_moves_to_the_gpu_when_torch_sees_one(tiny_model_dir, monkeypatch):
    import torch

    moved = []
    monkeypatch.setattr(PixelDancePipeline, "to", lambda self, *args, **kw: moved.append(args) or self)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    load_pipeline(tiny_model_dir)
    assert moved == []  # no GPU: stays on the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    load_pipeline(tiny_model_dir)
    assert moved == [("cuda",)]
    load_pipeline(tiny_model_dir, device=None)
    assert moved == [("cuda",)]  # device=None never moves
