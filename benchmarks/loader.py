"""Training data: raw videos vs shards of cached latents, for the loader and for a training step.

    python benchmarks/loader.py                  # 8 sample clips, the tiny latent model, 8 frames of 64x64
    python benchmarks/loader.py --clips 16 --steps 6

In one run, on this CPU, with the tiny latent-space model (VAE factor 8, so a real encode per clip):
1. loader samples/s: ``TrainingSamples(VideoFolder)`` (decode, sample, crop, recipe) vs ``ShardStream``
   (read cached latents + recipe), and their ratio;
2. seconds per training step from each source (the raw step also VAE-encodes the clip and its
   instructions and CLIP-encodes the caption), measured as the difference of a 1-step and a
   (1 + steps)-step run so start-up is left out, and their ratio;
3. bytes per sample on disk: measured on the shards made here, and on a shard written at the paper's
   size (16 latent frames of 32x32x4 for 256x256 clips, CLIP text 77 x 1024), to size WebVid-10M.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = ["model.pixel_space=false", "data.kind=videos", "data.num_frames=8", "data.size=[64, 64]", "data.fps=6",
        "train.batch_size=4", "train.tensorboard=false", "train.validation_clips=0", "train.log_every=1000",
        "train.checkpoint_every=100000", "train.warmup_steps=1"]


def loader_rate(samples, count: int) -> float:
    """Samples per second reading ``count`` samples from an indexable or iterable source."""
    from torch.utils.data import IterableDataset

    t0 = time.perf_counter()
    if isinstance(samples, IterableDataset):
        for _, _ in zip(range(count), iter(samples)):
            pass
    else:
        for k in range(count):
            samples[k]
    return count / (time.perf_counter() - t0)


def step_seconds(config_overrides: list[str], out: Path, steps: int) -> float:
    """Seconds per training step: a (1 + steps)-step run minus a 1-step run."""
    from finetune.config import load_config
    from finetune.train import train

    times = []
    for n in (1, 1 + steps):
        t0 = time.perf_counter()
        train(load_config("tiny", [*TINY, *config_overrides, f"train.output_dir={out / str(n)}",
                                   f"train.max_steps={n}"]))
        times.append(time.perf_counter() - t0)
    return (times[1] - times[0]) / steps


def paper_bytes_per_sample(folder: Path, n: int = 8) -> float:
    """On-disk bytes per sample of a shard at the paper's size (latents 4x16x32x32, text 77x1024, float16)."""
    import torch

    from finetune.shards import write_shard

    path = folder / "paper.safetensors"
    captions = ["a typical webvid caption of about this many words, describing the clip"] * n
    write_shard(path, torch.randn(n, 4, 16, 32, 32), torch.randn(n, 77, 1024), captions, {})
    return path.stat().st_size / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--samples", type=int, default=32, help="samples read for the loader figures")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per source")
    args = parser.parse_args()

    import torch

    from finetune.config import load_config
    from finetune.data import TrainingSamples, build_dataset
    from finetune.prepare import prepare
    from finetune.recipe import Recipe
    from finetune.shards import ShardStream
    from pdedit.video import make_sample

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "videos"
        data.mkdir()
        for i in range(args.clips):
            make_sample(data / f"clip{i}.mp4", seconds=3.0, fps=12, size=(320, 240))
        raw = [f"data.root={data}"]
        config = load_config("tiny", [*TINY, *raw])
        shards = folder / "shards"
        t0 = time.perf_counter()
        prepare(config, shards, shard_size=4)
        prep_s = time.perf_counter() - t0

        # 1. Loader throughput.
        recipe = Recipe()
        raw_rate = loader_rate(TrainingSamples(build_dataset(config), recipe, seed=0), args.samples)
        shard_rate = loader_rate(ShardStream(shards, recipe, 0, 0, 1, batch_size=4), args.samples)
        print(f"loader, {args.clips} clips of 320x240 -> 8 frames of 64x64, one thread:")
        print(f"  raw videos: {raw_rate:8.1f} samples/s")
        print(f"  shards    : {shard_rate:8.1f} samples/s")
        print(f"  ratio shards / raw: {shard_rate / raw_rate:.1f}x   (prepare took {prep_s:.1f} s, once)")

        # 2. Training step time.
        raw_step = step_seconds(raw, folder / "raw", args.steps)
        shard_step = step_seconds([*raw, f"data.shards={shards}"], folder / "shard", args.steps)
        print("training step, batch 4, tiny latent model:")
        print(f"  raw videos: {raw_step:.3f} s/step")
        print(f"  shards    : {shard_step:.3f} s/step")
        print(f"  ratio raw / shards: {raw_step / shard_step:.2f}x")

        # 3. Disk per sample.
        files = list(shards.glob("shard-*.safetensors"))
        made = sum(f.stat().st_size for f in files) / args.clips
        paper = paper_bytes_per_sample(folder)
        print(f"disk: {made:.0f} B/sample here (8x8x8x4 latents, 77x32 text); "
              f"{paper / 1024:.1f} KiB/sample at 16 x 256x256 (latents 4x16x32x32 + text 77x1024, float16)")
        print(f"  WebVid-10M at that size: {paper * 10e6 / 1e12:.2f} TB")


if __name__ == "__main__":
    main()
