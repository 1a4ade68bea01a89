"""finetune: data, the PixelDance recipe, the training loop, resume, distribution, the final folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune.config import load_config
from finetune.data import MovingShapes, SkipSample, VideoFolder, read_manifest, shape_centroid
from finetune.recipe import Recipe, c_image_noise, draw_sample, make_c_image, pick_last_index, training_target
from pdedit.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]

# A smaller UNet than tiny.yaml's so the loop tests stay a few seconds on a shared CPU.
FAST = [
    "model.unet={block_out_channels: [16, 32], down_block_types: [DownBlock3D, DownBlock3D], "
    "up_block_types: [UpBlock3D, UpBlock3D], norm_num_groups: 8}",
    "train.batch_size=8",
    "train.log_every=5",
    "train.validation_clips=2",
    "train.validation_steps=4",
    "train.warmup_steps=5",
]


@pytest.fixture
def one_thread():
    """Run torch on one thread: on an oversubscribed CPU that is several times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- data ------------------------------------------------------------------------------------


def test_moving_shapes_are_deterministic_by_seed_and_index():
    a, b, c = MovingShapes(seed=3), MovingShapes(seed=3), MovingShapes(seed=4)
    assert np.array_equal(a[5]["frames"], b[5]["frames"]) and a[5]["caption"] == b[5]["caption"]
    assert not np.array_equal(a[5]["frames"], c[5]["frames"])
    assert not np.array_equal(a[5]["frames"], a[6]["frames"])
    assert a[5]["frames"].shape == (8, 8, 8, 3) and a[5]["frames"].dtype == np.uint8


def test_moving_shapes_move_where_their_centres_say_and_captions_name_them():
    ds = MovingShapes(size=(32, 32), num_frames=8, kinds=("square",), bounce_prob=0.0, seed=1)
    errors, moved = [], []
    for i in range(20):
        item = ds[i]
        centers = item["centers"][:, 0]  # (F, 2)
        errors += [np.linalg.norm(shape_centroid(f) - c) for f, c in zip(item["frames"], centers)]
        moved.append(np.linalg.norm(centers[-1] - centers[0]))
        assert "square" in item["caption"] and "moving" in item["caption"]
    assert np.mean(errors) < 0.3  # rendered where the ground truth says, to sub-pixel accuracy
    assert np.mean(moved) > 3.0  # and they do move


def test_bouncing_shapes_stay_inside_the_frame():
    ds = MovingShapes(size=(16, 16), bounce_prob=1.0, seed=2)
    for i in range(30):
        c = ds[i]["centers"]
        assert c.min() >= 0 and c.max() <= 16
        assert "bouncing" in ds[i]["caption"]


def test_manifest_paths_cannot_escape_the_data_folder(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"x")
    (data / "m.csv").write_text("path,caption\n../secret.mp4,escape\n")
    with pytest.raises(BadInput, match="outside the data folder"):
        read_manifest(data, "m.csv")
    (data / "abs.jsonl").write_text(json.dumps({"path": str(tmp_path / "secret.mp4"), "caption": "x"}) + "\n")
    with pytest.raises(BadInput, match="line 1"):
        read_manifest(data, "abs.jsonl")


def test_webvid_csv_reads_videoid_and_name_with_page_dir(tmp_path):
    (tmp_path / "m.csv").write_text("videoid,contentUrl,duration,page_dir,name\n"
                                    "123,http://x,PT10S,0001,a dog runs\n")
    (entry,) = read_manifest(tmp_path, "m.csv")
    assert entry.path == (tmp_path / "0001" / "123.mp4").resolve()
    assert entry.caption == "a dog runs"


def test_corrupt_and_too_short_videos_are_skipped_and_counted(tmp_path):
    from pdedit.video import make_sample

    make_sample(tmp_path / "good.mp4", seconds=2.0, fps=12, size=(64, 48))
    make_sample(tmp_path / "short.mp4", seconds=0.3, fps=12, size=(64, 48))
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    (tmp_path / "m.jsonl").write_text("".join(
        json.dumps({"path": n, "caption": n}) + "\n" for n in ("good.mp4", "short.mp4", "corrupt.mp4")))
    ds = VideoFolder(tmp_path, "m.jsonl", num_frames=8, size=(32, 32), fps=8)
    item = ds.load(0, np.random.default_rng(0))
    assert item["frames"].shape == (8, 32, 32, 3) and item["caption"] == "good.mp4"
    for index in (1, 2):
        with pytest.raises(SkipSample):
            ds.load(index, np.random.default_rng(0))
    assert sorted(Path(p).name for p in ds.skipped) == ["corrupt.mp4", "short.mp4"]

    # Through the training stream a bad video never stops the run: the next one is used instead.
    from finetune.data import TrainingSamples

    samples = TrainingSamples(ds, Recipe(text_drop=0.0), seed=0)
    captions = {samples[k]["caption"] for k in range(6)}
    assert captions == {"good.mp4"}


# ---- recipe ----------------------------------------------------------------------------------


def test_recipe_statistics_over_many_draws_match_the_paper():
    frames = MovingShapes(size=(8, 8), num_frames=8)[0]["frames"]
    item = {"frames": frames, "caption": "a red square moving right"}
    recipe = Recipe(eta=0.25, text_drop=0.1)
    rng = np.random.default_rng(0)
    draws = [draw_sample(item, recipe, rng) for _ in range(4000)]
    keep = np.mean([d["keep_last"] for d in draws])
    text_kept = np.mean([d["caption"] != "" for d in draws])
    last = np.array([d["last_index"] for d in draws])
    assert abs((1 - keep) - 0.25) < 0.03  # last frame dropped with probability eta
    assert abs((1 - text_kept) - 0.1) < 0.02  # caption dropped with probability 0.1
    assert set(last.tolist()) == {5, 6, 7}  # one of the last three frames, each of them used
    assert all(abs(np.mean(last == k) - 1 / 3) < 0.04 for k in (5, 6, 7))
    expected_first = torch.from_numpy(frames[0]).float().div(127.5).sub(1).permute(2, 0, 1)
    for d in draws[:50]:
        assert torch.equal(d["first"], expected_first)  # the real first frame, exactly
        real_last = torch.from_numpy(frames[d["last_index"]]).float().div(127.5).sub(1).permute(2, 0, 1)
        assert torch.equal(d["last"], real_last)


def test_pick_last_index_handles_clips_shorter_than_the_choices():
    rng = np.random.default_rng(0)
    assert {pick_last_index(2, rng, 3) for _ in range(100)} == {0, 1}


def test_dropped_last_frame_is_an_exact_zero_in_c_image_and_kept_one_is_noised():
    f_first, f_last = torch.rand(2, 3, 4, 4) + 0.5, torch.rand(2, 3, 4, 4) + 0.5
    keep = torch.tensor([True, False])
    c = make_c_image(f_first, f_last, keep, 6, image_noise=0.1, generator=torch.Generator().manual_seed(0))
    assert c.shape == (2, 3, 6, 4, 4)
    assert torch.count_nonzero(c[1, :, -1]) == 0 and torch.count_nonzero(c[:, :, 1:-1]) == 0
    assert not torch.equal(c[0, :, -1], f_last[0]) and (c[0, :, -1] - f_last[0]).abs().max() < 1.0
    assert (c[:, :, 0] - f_first).std() == pytest.approx(0.1, rel=0.3)


def test_c_image_noised_at_a_timestep_is_the_forward_diffusion_there():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    assert c_image_noise(Recipe(), sched) == (1.0, 0.1)  # image_noise alone: a plain std, no scaling
    scale, std = c_image_noise(Recipe(image_noise=0.0, image_noise_timestep=100), sched)
    abar = np.prod(1.0 - np.linspace(1e-4, 0.02, 1000)[:101])  # q(x_100 | x_0) of the linear schedule
    assert (scale, std) == pytest.approx((np.sqrt(abar), np.sqrt(1 - abar)), rel=1e-4)
    assert 0.3 < std < 0.34  # the reference run's "timestep 100": noise std ~0.32
    f_first, f_last = torch.rand(2, 3, 8, 8) + 0.5, torch.rand(2, 3, 8, 8) + 0.5
    c = make_c_image(f_first, f_last, torch.tensor([True, False]), 4, std, torch.Generator().manual_seed(0), scale=scale)
    assert (c[:, :, 0] - scale * f_first).std() == pytest.approx(std, rel=0.2)
    assert (c[:, :, 0] - scale * f_first).mean().abs() < 0.1  # scaled, not shifted
    assert torch.count_nonzero(c[1, :, -1]) == 0 and torch.count_nonzero(c[:, :, 1:-1]) == 0  # dropped stays zero


@pytest.mark.parametrize("kwargs, words", [
    ({"image_noise": 0.0, "image_noise_timestep": -1}, "whole number >= 0"),
    ({"image_noise": 0.0, "image_noise_timestep": 99.5}, "whole number >= 0"),
    ({"image_noise_timestep": 100}, "recipe.image_noise=0"),  # the default std 0.1 and a timestep: which one?
])
def test_bad_image_noise_timestep_is_refused(kwargs, words):
    with pytest.raises(BadInput, match=words):
        Recipe(**kwargs)


def test_image_noise_timestep_past_the_schedule_is_refused_naming_the_range():
    from diffusers import DDPMScheduler

    with pytest.raises(BadInput, match="0..999"):
        c_image_noise(Recipe(image_noise=0.0, image_noise_timestep=1000), DDPMScheduler())


def test_training_target_is_noise_or_velocity():
    from diffusers import DDPMScheduler

    x0, noise, t = torch.randn(2, 3, 2, 4, 4), torch.randn(2, 3, 2, 4, 4), torch.tensor([10, 900])
    assert training_target(DDPMScheduler(prediction_type="epsilon"), x0, noise, t) is noise
    sched = DDPMScheduler(prediction_type="v_prediction")
    a = sched.alphas_cumprod[t].sqrt().view(-1, 1, 1, 1, 1)
    s = (1 - sched.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1, 1)
    assert torch.allclose(training_target(sched, x0, noise, t), a * noise - s * x0, atol=1e-5)


def test_unknown_transform_and_bad_eta_are_rejected():
    with pytest.raises(BadInput, match="last_frame_transform"):
        Recipe(last_frame_transform="depthmap")
    with pytest.raises(BadInput, match="eta"):
        Recipe(eta=1.5)


def test_config_overrides_apply_and_typos_are_named():
    c = load_config("tiny", ["train.lr=1e-3", "data.size=[16, 16]"])
    assert c.train.lr == 1e-3 and c.data.size == [16, 16]
    with pytest.raises(BadInput, match="train.learning_rate"):
        load_config("tiny", ["train.learning_rate=1"])


# ---- the loop --------------------------------------------------------------------------------


def _config(tmp_path: Path, *extra: str):
    return load_config("tiny", [*FAST, f"train.output_dir={tmp_path}", *extra])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One 50-step run of the tiny pixel-space model on moving shapes (shared by several tests)."""
    from finetune.train import train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    config = _config(out, "train.max_steps=50", "train.lr=2e-3", "train.checkpoint_every=25",
                     "train.validate_every=50", "train.ema_decay=0.9")
    final = train(config)
    torch.set_num_threads(before)
    return config, out, final


def _eval_loss(unet, config, n: int = 48) -> float:
    """The recipe loss of ``unet`` on fixed held-out samples, noise and timesteps."""
    from diffusers import DDPMScheduler

    from finetune.recipe import collate, diffusion_loss
    from finetune.data import TrainingSamples, build_dataset
    from finetune.model import build_model

    pipe = build_model(config)
    samples = TrainingSamples(build_dataset(config, held_out=True), Recipe(text_drop=0.0), seed=1)
    batch = collate([samples[k] for k in range(n)])
    c_image = make_c_image(batch["first"], batch["last"], batch["keep_last"], batch["video"].shape[2], 0.0)
    text = pipe.encode_prompt(batch["caption"], torch.device("cpu"), do_classifier_free_guidance=False)[0]
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    with torch.no_grad():
        return diffusion_loss(unet, scheduler, batch["video"], c_image, text, torch.Generator().manual_seed(0)).item()


def test_loss_falls_over_50_steps_of_the_tiny_model_on_moving_shapes(trained_run, one_thread):
    from finetune.model import build_model
    from pdedit.models import PixelDanceUNet

    config, _, final = trained_run
    before = _eval_loss(build_model(config).unet.eval(), config)
    after = _eval_loss(PixelDanceUNet.from_pretrained(final / "unet").eval(), config)
    assert after < 0.7 * before, (before, after)


def test_run_writes_checkpoints_logs_and_validation_samples(trained_run):
    _, out, _ = trained_run
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000025", "step-0000050"]
    assert list((out / "logs").rglob("events.out.tfevents*"))
    assert (out / "samples" / "step-0000050.mp4").stat().st_size > 0
    assert (out / "samples" / "step-0000050.png").stat().st_size > 0


def test_final_folder_loads_in_pixeldance_pipeline_and_generates(trained_run):
    # A fresh process, as `pdedit generate` would be: nothing from training is imported there.
    _, _, final = trained_run
    code = (
        "import numpy as np, torch\n"
        "from pdedit import PixelDancePipeline, load_pipeline\n"
        f"pipe = load_pipeline({str(final)!r})\n"
        "assert isinstance(pipe, PixelDancePipeline)\n"
        "first = np.zeros((8, 8, 3), np.uint8); first[2:5, 2:5] = 200\n"
        "out = pipe('a red square moving right', first, first, num_inference_steps=3, output_type='np',\n"
        "           generator=torch.Generator().manual_seed(0)).frames\n"
        "print(out.shape, bool(np.isfinite(out).all()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "(1, 8, 8, 8, 3) True"


def test_image_batches_train_spatial_layers_and_leave_temporal_layers_untouched(tmp_path, one_thread):
    import cv2

    from finetune.model import build_model
    from finetune.train import train
    from safetensors.torch import load_file

    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"{i}.png"), np.random.default_rng(i).integers(0, 255, (12, 16, 3), np.uint8))
        (images / f"{i}.txt").write_text(f"noise picture {i}")
    config = _config(tmp_path / "run", "train.max_steps=2", "train.tensorboard=false", "train.validation_clips=0",
                     f"data.images_root={images}", "data.image_ratio=1.0", "train.batch_size=2")
    before = build_model(config).unet.state_dict()
    after = load_file(str(train(config) / "unet" / "diffusion_pytorch_model.safetensors"))
    temporal = [k for k in before if "temp_" in k]
    spatial = [k for k in before if "resnets" in k]
    assert temporal and all(torch.equal(before[k], after[k]) for k in temporal)  # bypassed for images
    assert any(not torch.equal(before[k], after[k]) for k in spatial)


def test_sketch_transform_turns_the_last_instruction_into_lines_on_white():
    item = MovingShapes(size=(32, 32), kinds=("square",))[0]
    d = draw_sample(item, Recipe(last_frame_transform="sketch", eta=0.0), np.random.default_rng(0))
    last = (d["last"] + 1) * 127.5  # (3, H, W) in 0..255
    assert last.mean() > 180  # mostly white paper
    assert last.min() < 100  # with dark lines
    assert torch.equal(d["first"], torch.from_numpy(item["frames"][0]).float().div(127.5).sub(1).permute(2, 0, 1))


@pytest.mark.parametrize("image_ratio", [0.0, 0.5], ids=["videos", "videos and images"])
def test_interrupted_run_resumes_to_the_same_state_as_an_unbroken_one(tmp_path, one_thread, train_killed_in_step,
                                                                      image_ratio):
    import cv2
    from safetensors.torch import load_file

    import finetune.train as ft
    from finetune.checkpoint import latest_checkpoint
    from finetune.data import uses_images

    common = ["train.max_steps=4", "train.checkpoint_every=2", "train.tensorboard=false",
              "train.validation_clips=0", "train.batch_size=4"]
    if image_ratio:  # joint training: each loader must resume at the batches it alone has served
        images = tmp_path / "images"
        images.mkdir()
        for i in range(6):
            cv2.imwrite(str(images / f"{i}.png"), np.random.default_rng(i).integers(0, 255, (12, 16, 3), np.uint8))
            (images / f"{i}.txt").write_text(f"noise picture {i}")
        common += [f"data.images_root={images}", f"data.image_ratio={image_ratio}", "train.seed=1"]
        micro = [uses_images(1, m, image_ratio) for m in range(4)]
        assert micro[:2] == [True, False] and not all(micro[2:]), "seed 1 mixes both kinds on both sides"
    unbroken = ft.train(_config(tmp_path / "a", *common))

    # Crash during step 3 (after the step-2 checkpoint), then resume from the latest checkpoint.
    train_killed_in_step(_config(tmp_path / "b", *common), step=3)
    assert latest_checkpoint(tmp_path / "b").name == "step-0000002"
    resumed = ft.train(_config(tmp_path / "b", *common), resume="latest")

    state = lambda run: json.loads((run / "checkpoints" / "step-0000004" / "trainer_state.json").read_text())
    assert state(tmp_path / "a")["step"] == state(tmp_path / "b")["step"] == 4
    opt_a = torch.load(tmp_path / "a" / "checkpoints" / "step-0000004" / "optimizer.bin", weights_only=True)
    opt_b = torch.load(tmp_path / "b" / "checkpoints" / "step-0000004" / "optimizer.bin", weights_only=True)
    assert opt_a["state"] and opt_a["state"].keys() == opt_b["state"].keys()
    for k, sa in opt_a["state"].items():
        assert sa["step"] == opt_b["state"][k]["step"]
        # every parameter steps on video batches; temporal ones have no gradient on image batches
        assert sa["step"] == 4 or (image_ratio and sa["step"] >= 2)
        assert torch.allclose(sa["exp_avg"], opt_b["state"][k]["exp_avg"], atol=1e-6)
        assert torch.allclose(sa["exp_avg_sq"], opt_b["state"][k]["exp_avg_sq"], atol=1e-8)
    wa = load_file(str(unbroken / "unet" / "diffusion_pytorch_model.safetensors"))
    wb = load_file(str(resumed / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_resume_path_that_is_not_a_checkpoint_is_rejected(tmp_path):
    from finetune.train import train

    with pytest.raises(BadInput, match="not a checkpoint folder"):
        train(_config(tmp_path, "train.max_steps=1"), resume=str(tmp_path))


def test_two_process_cpu_run_through_accelerate_launch(tmp_path):
    out = tmp_path / "ddp"
    # accelerate runs several CPU processes through torchrun (its multi-GPU launcher) with
    # ACCELERATE_USE_CPU set: DDP over gloo, the same code path as a multi-GPU run.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(29500 + os.getpid() % 1000), "-m", "finetune", "--config", "tiny", "--output-dir", str(out), "--max-steps", "2",
           *FAST, "train.batch_size=2", "train.checkpoint_every=2", "train.tensorboard=false",
           "train.validation_clips=0"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "checkpoints" / "step-0000002" / "trainer_state.json").is_file()
    assert (out / "checkpoints" / "step-0000002" / "random_states_1.pkl").is_file()  # both ranks ran
    assert (out / "final" / "model_index.json").is_file()


def test_cli_reports_a_bad_config_with_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "finetune", "--config", "tiny", "train.nope=1",
                           "--output-dir", str(tmp_path / "x")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and "train.nope" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_checkpoint_is_renamed_into_place_only_after_every_rank_wrote_its_state(tmp_path):
    from finetune.checkpoint import latest_checkpoint, save_checkpoint

    events = []
    final = tmp_path / "checkpoints" / "step-0000003"

    class Accelerator:  # one main rank; records the order of barriers, writes and the rename
        is_main_process = True

        def wait_for_everyone(self):
            events.append(("barrier", final.exists()))

        def save_state(self, folder, safe_serialization=True):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "random_states_0.pkl").write_bytes(b"rank 0")
            events.append(("save_state", final.exists()))

    assert save_checkpoint(Accelerator(), tmp_path, 3, None, keep=2) == final
    saved = events.index(("save_state", False))
    assert events[saved + 1] == ("barrier", False)  # every rank has written before the main rank renames
    assert events[-1] == ("barrier", True)
    assert latest_checkpoint(tmp_path) == final and (final / "random_states_0.pkl").is_file()
