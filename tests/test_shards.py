"""finetune.prepare and finetune.shards: latents cached once, streamed per rank and worker, exact resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from finetune.config import load_config
from finetune.recipe import Recipe
from pdedit.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIGS = ROOT / "finetune" / "configs" / "accelerate"
# A smaller UNet than tiny.yaml's (as in test_finetune), so the loop tests stay a few seconds.
FAST = [
    "model.unet={block_out_channels: [16, 32], down_block_types: [DownBlock3D, DownBlock3D], "
    "up_block_types: [UpBlock3D, UpBlock3D], norm_num_groups: 8}",
    "train.batch_size=4", "train.log_every=5", "train.warmup_steps=5", "train.tensorboard=false",
    "train.validation_clips=0",
]
SHAPES = "data.shapes={length: 24}"

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def _config(*extra: str):
    return load_config("tiny", [*FAST, SHAPES, *extra])


@pytest.fixture(scope="module")
def shapes_shards(tmp_path_factory, single_thread_torch) -> Path:
    """24 moving-shapes clips of the tiny config, prepared into 6 shards of 4."""
    from finetune.prepare import prepare

    out = tmp_path_factory.mktemp("shards") / "shapes"
    assert prepare(_config(), out, shard_size=4) == out / "shards.json"
    return out


# ---- prepare -------------------------------------------------------------------------------------


def test_prepare_encodes_each_clip_once_skips_bad_videos_and_resumes_per_shard(tmp_path, sample_clip):
    from safetensors import safe_open

    from finetune.data import VideoFolder
    from finetune.prepare import prepare
    from finetune.recipe import to_tensor
    from finetune.model import build_model
    from pdedit.pipeline import encode_video
    from pdedit.video import make_sample

    data = tmp_path / "videos"
    data.mkdir()
    for i in range(3):
        (data / f"good{i}.mp4").write_bytes(sample_clip.read_bytes())
    make_sample(data / "short.mp4", seconds=0.3, fps=12, size=(64, 48))
    (data / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    rows = ["good0.mp4", "short.mp4", "good1.mp4", "corrupt.mp4", "good2.mp4"]
    (data / "m.jsonl").write_text("".join(json.dumps({"path": p, "caption": f"clip {p}"}) + "\n" for p in rows))
    config = _config("data.kind=videos", f"data.root={data}", "data.manifest=m.jsonl", "data.fps=4")
    out = tmp_path / "shards"

    manifest = json.loads(prepare(config, out, shard_size=2).read_text())
    assert [s["samples"] for s in manifest["shards"]] == [1, 1, 1]  # 5 clips in shards of 2, two skipped
    assert manifest["samples"] == 3 and manifest["clips"] == 5
    assert sorted(Path(p).name for p in manifest["skipped"]) == ["corrupt.mp4", "short.mp4"]
    assert manifest["settings"]["num_frames"] == 8 and manifest["settings"]["size"] == [8, 8]
    # Shard 1 holds clip 2 (good1): the frames the dataset samples for it, through the run's VAE.
    item = VideoFolder(data, "m.jsonl", num_frames=8, size=(8, 8), fps=4, seed=0)[2]
    expected = encode_video(build_model(config).vae, to_tensor(item["frames"])[None])[0]  # (C, F, h, w)
    with safe_open(str(out / "shard-00001.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["captions"]) == ["clip good1.mp4"]
        cached = f.get_tensor("latents")
    assert cached.dtype == torch.float16 and cached.shape == (1, *expected.shape)
    torch.testing.assert_close(cached[0].float(), expected, atol=2e-3, rtol=0)

    # A run killed after two shards: the rerun makes only the missing one and lists all three again.
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    (out / "shard-00001.safetensors").unlink()
    (out / "shards.json").unlink()
    assert json.loads(prepare(config, out, shard_size=2).read_text()) == manifest
    assert (out / "shard-00001.safetensors").is_file()
    assert all((out / name).stat().st_mtime_ns == t for name, t in mtimes.items() if name != "shard-00001.safetensors")
    with pytest.raises(BadInput, match="other settings"):
        prepare(load_config("tiny", [*FAST, "data.kind=videos", f"data.root={data}", "data.manifest=m.jsonl",
                                     "data.num_frames=6"]), out, shard_size=2)


# ---- the stream ----------------------------------------------------------------------------------


def test_each_rank_and_worker_reads_its_own_shards_in_a_seeded_order(shapes_shards):
    from finetune.shards import ShardStream

    def stream(rank, seed=0, buffer=4):
        return ShardStream(shapes_shards, Recipe(), seed, rank, 2, batch_size=2, buffer_size=buffer)

    for epoch in (0, 1):
        owned = [stream(r)._shards(epoch, w, 2) for r in (0, 1) for w in (0, 1)]
        assert sorted(s for shards in owned for s in shards) == list(range(6))  # each shard read once an epoch
    assert stream(0)._shards(0, 0, 1) != stream(0)._shards(1, 0, 1)  # a new order each epoch
    keys = lambda s, n=12: [k for _, k in zip(range(n), s.keys(0, 2))]
    assert keys(stream(0)) == keys(stream(0)) != keys(stream(0, seed=1))
    first = keys(stream(1), 8 - 4)  # worker 0 of rank 1 holds 2 shards (8 clips); the buffer keeps 4 back
    mine = set(stream(1)._shards(0, 0, 2))
    assert len(set(first)) == len(first) and {s for s, _ in first} <= mine
    with pytest.raises(BadInput, match="cannot feed"):
        next(ShardStream(shapes_shards, Recipe(), 0, 7, 8, batch_size=2).keys(0, 1))  # 6 shards, 8 ranks


def test_a_stream_resumed_at_batch_k_continues_exactly_with_two_loader_workers(shapes_shards):
    from torch.utils.data import DataLoader

    from finetune.shards import ShardStream, collate_cached

    def batches(start, n):
        stream = ShardStream(shapes_shards, Recipe(eta=0.5, text_drop=0.5), 0, 1, 2, batch_size=2, start=start,
                             buffer_size=3)
        loader = DataLoader(stream, batch_size=2, collate_fn=collate_cached, num_workers=2)
        return [b for _, b in zip(range(n), loader)]

    unbroken, resumed = batches(0, 6), batches(3, 3)  # batch 3 was the second worker's: resuming must know
    for a, b in zip(unbroken[3:], resumed):
        for key in ("latents", "text", "last_index", "keep_last"):
            assert torch.equal(a[key], b[key]), key
    assert not torch.equal(unbroken[0]["latents"], unbroken[1]["latents"])
    last = torch.cat([b["last_index"] for b in unbroken])
    assert set(last.tolist()) <= {5, 6, 7}  # one of the last three of 8 frames (§3.2)


# ---- training from shards ------------------------------------------------------------------------


def test_training_from_shards_resumes_to_the_same_state_as_an_unbroken_run(tmp_path, shapes_shards, monkeypatch,
                                                                              train_killed_in_step):
    from safetensors.torch import load_file

    import finetune.train as ft
    from finetune.model import build_model

    common = ["train.max_steps=4", "train.checkpoint_every=2", f"data.shards={shapes_shards}"]
    unbroken = ft.train(_config(f"train.output_dir={tmp_path / 'a'}", *common))
    train_killed_in_step(_config(f"train.output_dir={tmp_path / 'b'}", *common), step=3)
    # The cached stream never decodes a video, nor runs the VAE or the text encoder.
    monkeypatch.setattr(ft, "encode_video", lambda *a, **k: pytest.fail("encode_video called"))
    monkeypatch.setattr(ft, "encode_text", lambda *a, **k: pytest.fail("encode_text called"))
    resumed = ft.train(_config(f"train.output_dir={tmp_path / 'b'}", *common), resume="latest")
    wa = load_file(str(unbroken / "unet" / "diffusion_pytorch_model.safetensors"))
    wb = load_file(str(resumed / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    init = build_model(_config()).unet.state_dict()
    assert any(not torch.equal(init[k], wa[k]) for k in wa)  # and it did train


@pytest.mark.parametrize("override, words", [
    ("model.pixel_space=false", "another VAE"),
    ("data.num_frames=6", "prepare them again"),
    ("recipe.last_frame_transform=sketch", "raw videos"),
])
def test_shards_that_do_not_fit_the_run_are_refused(tmp_path, shapes_shards, override, words):
    from finetune.train import train

    with pytest.raises(BadInput, match=words):
        train(_config(f"train.output_dir={tmp_path}", "train.max_steps=1", f"data.shards={shapes_shards}", override))
    assert not list(tmp_path.glob("checkpoints/step-*"))


def test_training_on_a_folder_that_was_never_prepared_says_how(tmp_path):
    from finetune.train import train

    with pytest.raises(BadInput, match="python -m finetune.prepare"):
        train(_config(f"train.output_dir={tmp_path / 'run'}", "train.max_steps=1", f"data.shards={tmp_path}"))


# ---- distributed: prepare and train on 2 CPU processes with the configs' launcher ----------------


def _launch(config_file: Path, *args: str, port: int, cpu: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
           "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(port), *args]
    env = {**os.environ, "ACCELERATE_USE_CPU": str(cpu).lower(), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_ddp_config_prepares_and_trains_from_shards_on_two_cpu_processes(tmp_path):
    from safetensors import safe_open

    shards, run = tmp_path / "shards", tmp_path / "run"
    # One launch for both steps (each launch pays for two processes importing torch and diffusers).
    script = tmp_path / "prepare_then_train.py"
    script.write_text(
        "import sys\n"
        "from accelerate import PartialState\n"
        "from finetune.config import load_config\n"
        "from finetune.prepare import prepare\n"
        "from finetune.train import train\n"
        "overrides = sys.argv[3:]\n"
        "prepare(load_config('tiny', overrides), sys.argv[1], shard_size=4)\n"
        "PartialState().wait_for_everyone()  # the last rank to finish writes shards.json\n"
        "train(load_config('tiny', [*overrides, f'data.shards={sys.argv[1]}', f'train.output_dir={sys.argv[2]}', "
        "'train.max_steps=2', 'train.batch_size=2']))\n")
    proc = _launch(ACCELERATE_CONFIGS / "ddp.yaml", str(script), str(shards), str(run), *FAST, SHAPES,
                   port=29900 + os.getpid() % 50)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = []
    for shard in sorted(shards.glob("shard-*.safetensors")):
        with safe_open(str(shard), "pt") as f:
            ranks.append(int(f.metadata()["rank"]))
    assert ranks == [0, 1] * 3  # each rank made its own slice of the clips: shards r, r + 2, ...
    assert json.loads((shards / "shards.json").read_text())["samples"] == 24
    assert (run / "checkpoints" / "step-0000002" / "random_states_1.pkl").is_file()  # both ranks trained
    assert (run / "final" / "model_index.json").is_file()


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero2", "DEEPSPEED")])
def test_accelerate_configs_load_and_name_their_backend(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ACCELERATE_CONFIGS / f"{name}.yaml"))
    assert config.distributed_type.value == kind and config.num_processes == 8 and not config.use_cpu
    if name == "fsdp":
        assert config.fsdp_config["fsdp_sharding_strategy"] == "FULL_SHARD"
    if name == "deepspeed_zero2":
        assert config.deepspeed_config["zero_stage"] == 2


@pytest.mark.parametrize("name", ["fsdp", "deepspeed_zero2"])
def test_sharded_backends_train_two_steps_on_two_gpus(tmp_path, name):
    # On a CPU accelerate refuses FSDP ("no available devices ... CUDA ...", in FullyShardedDataParallelPlugin);
    # DeepSpeed starts on its CPU accelerator, but accelerate then sees every process as process 0 of 1, so
    # both write the checkpoint as rank 0. Both run only where GPUs are.
    if torch.cuda.device_count() < 2:
        pytest.skip(f"{name} needs 2 GPUs: accelerate's FSDP and DeepSpeed backends do not run on a CPU")
    if name == "deepspeed_zero2":
        pytest.importorskip("deepspeed")
    run = _launch(ACCELERATE_CONFIGS / f"{name}.yaml", "-m", "finetune", "--config", "tiny", "--output-dir",
                  str(tmp_path / "run"), "--max-steps", "2", *FAST, "train.batch_size=2", SHAPES,
                  port=29990 - os.getpid() % 50, cpu=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "run" / "final" / "model_index.json").is_file()
