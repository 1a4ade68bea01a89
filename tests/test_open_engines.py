"""The wan and ltx engines on tiny random Wan2.1 FLF2V / LTX-Video folders: tau schedule, strength, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cli_helpers import run
import torch

from pdedit.conditioning import round_steps
from pdedit.engines import EditJob, choose_engine, get_engine
from pdedit.engines.open_models import check_vram, estimate_vram, fit_num_frames, fit_size, frame_positions
from pdedit.errors import BadInput, MissingModel, Unsupported

SIZE = (48, 32)  # (w, h): Wan's grid is 16, so the model renders 48x32; LTX's is 32, so it renders 64x32


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these models are tiny, and on a shared CPU a second thread only waits (3-10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory):
    """A tiny random Wan2.1 FLF2V folder (saved, then loaded back by the engine)."""
    from pdedit.model_init import build_tiny_wan_pipeline

    folder = tmp_path_factory.mktemp("wan") / "wan-flf2v"
    build_tiny_wan_pipeline(folder)
    return folder


@pytest.fixture(scope="module")
def ltx_dir(tmp_path_factory):
    """A tiny random LTX-Video folder."""
    from pdedit.model_init import build_tiny_ltx_pipeline

    folder = tmp_path_factory.mktemp("ltx") / "ltx-video"
    build_tiny_ltx_pipeline(folder)
    return folder


@pytest.fixture(scope="module")
def wan(wan_dir):
    """One wan engine for the module (the pipeline loads once)."""
    return get_engine("auto", wan_dir)


@pytest.fixture(scope="module")
def ltx(ltx_dir):
    """One ltx engine for the module."""
    return get_engine("auto", ltx_dir)


def _frame(seed: int, size=SIZE) -> np.ndarray:
    """A random uint8 RGB frame of ``size`` (w, h)."""
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def _job(**kw) -> EditJob:
    """A 9-frame job at SIZE with distinct first and last frames."""
    args = dict(source=None, first=_frame(1), last=_frame(2), num_frames=9, fps=8.0, size=SIZE, prompt="a red fox",
                steps=4, guidance=2.0, seed=3)
    args.update(kw)
    return EditJob(**args)


class _Spy:
    """Records the keyword inputs of every transformer call (wraps ``forward``, so it sees what the model sees)."""

    def __init__(self, transformer):
        self.transformer = transformer
        self.calls: list[dict] = []

    def __enter__(self):
        original = self.transformer.forward

        def forward(*args, **kwargs):
            self.calls.append({k: v.detach().clone() if torch.is_tensor(v) else v for k, v in kwargs.items()})
            return original(*args, **kwargs)

        self.transformer.forward = forward
        return self

    def __exit__(self, *exc):
        del self.transformer.forward


def _stock_wan(engine, job: EditJob) -> np.ndarray:
    """The stock WanImageToVideoPipeline at the job's settings: float (F, H, W, 3)."""
    from PIL import Image

    w, h = SIZE
    out = engine.pipe(image=Image.fromarray(job.first), last_image=Image.fromarray(job.last), prompt=job.prompt,
                      height=h, width=w, num_frames=job.num_frames, num_inference_steps=job.steps,
                      guidance_scale=job.guidance, generator=torch.Generator().manual_seed(job.seed), output_type="np")
    return out.frames[0]


# ---- wan ----


def test_wan_engine_renders_the_job_frames_at_the_job_size(wan):
    frames = list(wan.render(_job(num_frames=7, size=(40, 24), first=_frame(1, (40, 24)), last=_frame(2, (40, 24)))))
    assert len(frames) == 7
    assert all(f.shape == (24, 40, 3) and f.dtype == np.uint8 for f in frames)
    assert np.std(np.stack(frames).astype(float)) > 1.0  # an image, not a constant


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0])
def test_wan_last_frame_condition_present_in_exactly_the_first_round_tau_T_steps(wan, tau):
    steps = 5
    with _Spy(wan.pipe.transformer) as spy:
        list(wan.render(_job(tau=tau, steps=steps)))
    assert len(spy.calls) == 2 * steps  # cond and uncond per step (guidance > 1)
    z = wan.pipe.vae.config.z_dim
    seen = []
    for call in spy.calls:
        hidden = call["hidden_states"]  # (B, z + 4 + z, f, h, w): latents, frame mask, condition latents
        mask_last = hidden[:, z:z + 4, -1]
        image = call["encoder_hidden_states_image"]  # (2B, S, D): [first, last]
        seen.append((bool(mask_last.abs().max() > 0), bool(image[1::2].abs().max() > 0)))
    k = round_steps(tau, steps)
    expected = [(i < k, i < k) for i in range(steps) for _ in range(2)]
    assert seen == expected
    # The first frame is given in every step, whatever tau.
    assert all(bool(c["hidden_states"][:, z:z + 4, 0].min() > 0) for c in spy.calls)
    assert all(bool(c["encoder_hidden_states_image"][0::2].abs().max() > 0) for c in spy.calls)


def test_wan_condition_without_last_frame_is_the_pipelines_first_frame_only_condition(wan):
    with _Spy(wan.pipe.transformer) as spy:
        list(wan.render(_job(tau=0.0, steps=2)))
    from PIL import Image

    z = wan.pipe.vae.config.z_dim
    without = spy.calls[0]["hidden_states"][:, z:]
    latents = spy.calls[0]["hidden_states"][:, :z]

    pipe = wan.pipe
    image = pipe.video_processor.preprocess(Image.fromarray(_frame(1)), height=32, width=48)
    _, stock_i2v = pipe.prepare_latents(image, 1, z, 32, 48, 9, torch.float32, torch.device("cpu"), None, latents, None)
    assert torch.equal(without, stock_i2v)


def test_wan_tau_one_reproduces_the_stock_pipeline_bit_for_bit(wan):
    job = _job(tau=1.0)
    ours = wan._generate(job, wan.plan(job))
    stock = _stock_wan(wan, job)
    assert ours.shape == stock.shape == (9, 32, 48, 3)
    assert np.array_equal(ours, stock)
    assert np.array_equal(np.stack(list(wan.render(job))), (np.clip(stock, 0, 1) * 255 + 0.5).astype(np.uint8))
    # and the schedule does change the result when tau < 1
    assert not np.array_equal(wan._generate(_job(tau=0.5), wan.plan(job)), stock)


def test_wan_strength_runs_round_strength_T_steps_from_the_noised_source(wan):
    steps, strength = 5, 0.5
    source = [_frame(10 + i) for i in range(9)]
    wan.pipe.scheduler.set_timesteps(steps)
    full = wan.pipe.scheduler.timesteps.clone()
    with _Spy(wan.pipe.transformer) as spy:
        frames = list(wan.render(_job(source=source, strength=strength, steps=steps, tau=0.5)))
    run = math.floor(strength * steps + 0.5)  # 3 steps
    assert len(frames) == 9
    timesteps = [float(c["timestep"][0]) for c in spy.calls[::2]]
    assert timesteps == [float(t) for t in full[steps - run:]]
    # tau counts over the steps run: round(0.5 * 3) = 2 of them see the last frame
    z = wan.pipe.vae.config.z_dim
    seen = [bool(c["hidden_states"][:, z:z + 4, -1].abs().max() > 0) for c in spy.calls[::2]]
    assert seen == [True, True, False]
    assert wan.pipe.scheduler.timesteps.numel() == steps  # the scheduler got its full table back


def test_wan_strength_starts_from_the_source_latents_noised_to_the_first_step_run(wan):
    from diffusers.utils.torch_utils import randn_tensor

    steps, strength = 4, 0.5
    job = _job(source=[_frame(10 + i) for i in range(9)], strength=strength, steps=steps)
    x0 = wan._encode_source(job, wan.plan(job))  # (1, z, f, h, w), normalised as the pipeline's condition
    with _Spy(wan.pipe.transformer) as spy:
        list(wan.render(job))
    z = wan.pipe.vae.config.z_dim
    start = wan.pipe.scheduler.sigmas[steps - 2]  # round(0.5 * 4) = 2 steps run: the last two
    noise = randn_tensor(x0.shape, generator=torch.Generator().manual_seed(job.seed))
    expected = start * noise + (1 - start) * x0
    assert torch.allclose(spy.calls[0]["hidden_states"][:, :z], expected, atol=1e-6)


def test_wan_rejects_keyframes_and_image_noise_with_unsupported(wan):
    with pytest.raises(Unsupported, match="ltx"):
        wan.render(_job(keyframes={4: _frame(5)}))
    with pytest.raises(Unsupported, match="image-noise"):
        wan.render(_job(image_noise=0.1))


def test_strength_below_one_without_a_source_is_bad_input(wan):
    with pytest.raises(BadInput, match="source"):
        wan.render(_job(strength=0.5))
    with pytest.raises(BadInput, match="tau"):
        wan.render(_job(tau=1.5))


# ---- ltx ----


def _keyframe_positions(call, frame_rate: float) -> set[int]:
    """Frame positions of the transformer's tokens (LTX passes their (t, y, x) coordinates, t in seconds)."""
    return {int(round(float(t) * frame_rate)) for t in call["video_coords"][0, 0].unique()}


def test_ltx_engine_renders_the_job_frames_at_the_job_size(ltx):
    frames = list(ltx.render(_job(num_frames=6)))
    assert len(frames) == 6
    assert all(f.shape == (32, 48, 3) and f.dtype == np.uint8 for f in frames)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0])
def test_ltx_each_keyframe_present_in_exactly_the_first_round_tau_T_steps(ltx, tau):
    steps = 5
    job = _job(tau=tau, steps=steps, keyframes={4: _frame(4)}, keyframe_tau={4: 1.0 - tau})
    with _Spy(ltx.pipe.transformer) as spy:
        list(ltx.render(job))
    assert len(spy.calls) == steps  # cond and uncond batched in one call
    # The model renders 9 frames with VAE factor 4: video tokens sit at positions 0, 1, 5 (the causal first
    # latent frame, then 4k+1); the keyframes at 4 and 8 are theirs alone.
    seen = [(4 in _keyframe_positions(c, 8.0), 8 in _keyframe_positions(c, 8.0)) for c in spy.calls]
    k_mid, k_last = round_steps(1.0 - tau, steps), round_steps(tau, steps)
    assert seen == [(i < k_mid, i < k_last) for i in range(steps)]
    per_image = (32 // 4) * (64 // 4)
    for call, (mid, last) in zip(spy.calls, seen):
        assert call["hidden_states"].shape[1] == per_image * (3 + mid + last)


def test_ltx_tau_one_reproduces_the_stock_pipeline_bit_for_bit(ltx):
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition
    from PIL import Image

    job = _job(tau=1.0, keyframes={4: _frame(4)})
    ours = ltx._generate(job, ltx.plan(job))
    conditions = [LTXVideoCondition(image=Image.fromarray(job.first), frame_index=0),
                  LTXVideoCondition(image=Image.fromarray(job.keyframes[4]), frame_index=4),
                  LTXVideoCondition(image=Image.fromarray(job.last), frame_index=8)]
    stock = ltx.pipe(conditions=conditions, prompt=job.prompt, height=32, width=64, num_frames=9, frame_rate=8.0,
                     num_inference_steps=job.steps, guidance_scale=job.guidance, image_cond_noise_scale=0.0,
                     generator=torch.Generator().manual_seed(job.seed), output_type="np").frames[0]
    assert ours.shape == stock.shape == (9, 32, 64, 3)
    assert np.array_equal(ours, stock)
    assert not np.array_equal(ltx._generate(_job(tau=0.0, keyframes={4: _frame(4)}), ltx.plan(job)), stock)


def test_ltx_strength_runs_round_strength_T_steps(ltx):
    steps, strength = 6, 0.4
    source = [_frame(10 + i) for i in range(9)]
    with _Spy(ltx.pipe.transformer) as spy:
        frames = list(ltx.render(_job(source=source, strength=strength, steps=steps, tau=0.5)))
    run = math.floor(strength * steps + 0.5)  # round(2.4) = 2
    assert len(frames) == 9 and len(spy.calls) == run
    assert [8 in _keyframe_positions(c, 8.0) for c in spy.calls] == [True, False]  # round(0.5 * 2) = 1


def test_ltx_keyframe_index_outside_the_clip_is_bad_input(ltx):
    with pytest.raises(BadInput, match="keyframe 8"):
        ltx.render(_job(keyframes={8: _frame(4)}))
    with pytest.raises(BadInput, match="keyframe 3"):
        ltx.render(_job(keyframe_tau={3: 0.5}))


# ---- model folders, auto, memory ----


def test_auto_picks_the_engine_from_model_index(wan_dir, ltx_dir, tmp_path):
    assert choose_engine("auto", wan_dir)[0] == "wan"
    assert choose_engine("auto", ltx_dir)[0] == "ltx"
    plain = tmp_path / "ltx-plain"
    plain.mkdir()
    (plain / "model_index.json").write_text(json.dumps({"_class_name": "LTXPipeline"}))
    assert choose_engine("auto", plain)[0] == "ltx"


def test_model_folder_of_the_wrong_kind_is_missing_model(wan_dir, ltx_dir, tmp_path):
    with pytest.raises(MissingModel, match="--engine wan"):
        get_engine("ltx", wan_dir)
    with pytest.raises(MissingModel, match="not a model for the wan engine"):
        get_engine("wan", ltx_dir)
    with pytest.raises(MissingModel, match="hf download Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers"):
        get_engine("wan", tmp_path / "absent")


def test_vram_check_picks_the_fastest_offload_that_fits_and_refuses_clearly():
    estimates = {"none": 40 << 30, "model": 30 << 30, "sequential": 10 << 30}
    assert check_vram(estimates, 80 << 30, "auto", "job") == "none"
    assert check_vram(estimates, 32 << 30, "auto", "job") == "model"
    with pytest.raises(Unsupported, match="--offload model"):
        check_vram(estimates, 32 << 30, "none", "job")
    with pytest.raises(Unsupported, match="smaller --size"):
        check_vram(estimates, 8 << 30, "auto", "job")


def test_vram_estimate_shrinks_with_offload(wan):
    comps = {k: v for k, v in wan.pipe.components.items() if isinstance(v, torch.nn.Module)}
    none, model, seq = (estimate_vram(comps, 1000, m) for m in ("none", "model", "sequential"))
    assert none > model > seq


def test_model_grid_fitting_keeps_first_and_last_frame():
    assert fit_num_frames(9, 4) == 9 and fit_num_frames(10, 4) == 13 and fit_num_frames(10, 8) == 17
    positions = frame_positions(10, 17)
    assert positions[0] == 0 and positions[-1] == 16 and positions == sorted(set(positions))
    assert fit_size((48, 32), 16) == (48, 32) and fit_size((40, 24), 32) == (32, 32)


# ---- through `pdedit edit` ----


@pytest.fixture(scope="module")
def sample_video(tmp_path_factory):
    """A 1-second 64x48 clip at 12 fps, made from scikit-image's photo (no input needed)."""
    from pdedit.video import make_sample

    return make_sample(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1.0, fps=12, size=(64, 48))


@pytest.mark.parametrize("engine", ["wan", "auto"])
def test_pdedit_edit_runs_the_wan_engine_end_to_end(wan_dir, sample_video, tmp_path, engine):
    from pdedit.video import probe

    out = tmp_path / "wan.mp4"
    result = run("edit", sample_video, "--first-edit", "auto:sepia", "--last-edit", "auto:sepia", "-o", out,
                     "--engine", engine, "--model", wan_dir, "--frames", 9, "--size", "48x32", "--steps", 2,
                     "--tau", 0.5, "--strength", 0.5, "--keyframe-tau", "8=0.5", "--prompt", "sepia fox")
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info.frame_count, info.width, info.height) == (9, 48, 32)


def test_pdedit_edit_runs_the_ltx_engine_with_a_keyframe(ltx_dir, sample_video, tmp_path):
    from pdedit.video import probe, save_image

    key = save_image(tmp_path / "key.png", _frame(7, (64, 48)))
    out = tmp_path / "ltx.mp4"
    result = run("edit", sample_video, "--first-edit", "auto:sepia", "--last-edit", "auto:sepia", "-o", out,
                     "--model", ltx_dir, "--frames", 9, "--size", "64x32", "--steps", 2, "--keyframe", f"4={key}",
                     "--keyframe-tau", "4=0.5", "--offload", "none")
    assert result.exit_code == 0, result.output
    assert probe(out).frame_count == 9


@pytest.mark.parametrize("args, message", [
    (["--engine", "ltx"], "--engine wan"),  # a Wan folder given to the ltx engine
    (["--keyframe", "4=auto:sepia"], "first and a last frame only"),  # Wan takes no middle keyframes
    (["--engine", "propagate", "--keyframe", "9=auto:sepia"], "--keyframe 9"),  # outside the clip
    (["--keyframe", "four=x.png"], "IDX=VALUE"),
])
def test_pdedit_edit_refuses_bad_open_engine_input_with_exit_2_and_no_output(wan_dir, sample_video, tmp_path,
                                                                            args, message):
    out = tmp_path / "bad.mp4"
    result = run("edit", sample_video, "--first-edit", "auto:sepia", "--last-edit", "auto:sepia", "-o", out,
                     "--model", wan_dir, "--frames", 9, "--size", "48x32", "--steps", 2, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("engine", ["wan", "ltx"])
def test_pdedit_generate_runs_the_open_engines_from_first_and_last_images(engine, wan_dir, ltx_dir, tmp_path):
    from pdedit.video import probe, save_image

    first = save_image(tmp_path / "first.png", _frame(1, (64, 32)))
    last = save_image(tmp_path / "last.png", _frame(2, (64, 32)))
    out = tmp_path / "gen.mp4"
    model = wan_dir if engine == "wan" else ltx_dir
    result = run("generate", "--engine", engine, "--model", model, "--prompt", "a fox", "--first", first,
                     "--last", last, "--tau", 0.5, "--frames", 9, "--fps", 8, "--size", "64x32", "--steps", 2, "-o", out)
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info.frame_count, info.width, info.height) == (9, 64, 32)


def test_pdedit_generate_with_a_model_of_the_wrong_kind_exits_2(ltx_dir, tmp_path):
    first = tmp_path / "first.png"
    from pdedit.video import save_image

    save_image(first, _frame(1, (64, 32)))
    out = tmp_path / "gen.mp4"
    result = run("generate", "--engine", "wan", "--model", ltx_dir, "--prompt", "a fox", "--first", first,
                     "-o", out)
    assert result.exit_code == 2 and "--engine ltx" in result.output
    assert not out.exists()
