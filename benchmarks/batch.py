"""The batch runner: jobs per minute with 1 vs 2 worker processes, and its per-job overhead with a model.

    python benchmarks/batch.py                 # 8 propagate jobs, 6 tiny-model generate jobs
    python benchmarks/batch.py --jobs 16 --size 320x240

1. Propagate edit jobs on a sample clip, `run_batch(workers=1)` vs `workers=2`, in one run: jobs/min
   of each and their ratio (2 workers on 2 cores can reach at most 2x; the pool's start-up is included).
2. Generate jobs on the tiny PixelDance model: one batch of N jobs (the model loaded once) vs N
   batches of one job (the model loaded for each), seconds per job and the difference, which is the
   cost of loading the model that the batch saves per job.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _manifest(folder: Path, name: str, rows: list[dict]) -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _timed_batch(manifest: Path, out: Path, workers: int = 1) -> float:
    from pdedit.batch import run_batch

    t0 = time.perf_counter()
    summary = run_batch(manifest, out, workers=workers)
    seconds = time.perf_counter() - t0
    assert summary.failed == 0 and summary.done == len(summary.records), summary.records
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8, help="propagate jobs")
    parser.add_argument("--size", default="320x240", help="sample clip size")
    parser.add_argument("--generate-jobs", type=int, default=6, help="tiny-model generate jobs")
    args = parser.parse_args()

    import torch

    from pdedit.model_init import build_tiny_pipeline
    from pdedit.video import make_sample, parse_size, save_image

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_sample(folder / "clip.mp4", seconds=2.0, fps=12, size=parse_size(args.size))
        specs = ["auto:sepia", "auto:night", "auto:cartoon", "auto:pencil", "auto:hue", "auto:posterize"]

        # 1. Propagate jobs: one process vs two.
        rows = [{"command": "edit", "video": "clip.mp4", "first_edit": specs[i % len(specs)],
                 "last_edit": specs[(i + 1) % len(specs)], "output": f"{i}.mp4"} for i in range(args.jobs)]
        manifest = _manifest(folder, "propagate.jsonl", rows)
        one = _timed_batch(manifest, folder / "w1", workers=1)
        two = _timed_batch(manifest, folder / "w2", workers=2)
        print(f"propagate, {args.jobs} jobs of 24 frames at {args.size} on {os.cpu_count()} cores:")
        print(f"  1 worker : {60 * args.jobs / one:6.1f} jobs/min ({one:.1f} s)")
        print(f"  2 workers: {60 * args.jobs / two:6.1f} jobs/min ({two:.1f} s)")
        print(f"  ratio 2 / 1 workers: {one / two:.2f}x")

        # 2. Generate jobs: the model loaded once per batch vs once per job.
        build_tiny_pipeline(folder / "model", seed=0)
        first = (torch.linspace(0, 255, 64).to(torch.uint8)[None, :, None].expand(64, 64, 3)).numpy()
        save_image(folder / "first.png", first)
        n = args.generate_jobs
        gen = [{"command": "generate", "model": "model", "prompt": f"shot {i}", "first": "first.png", "steps": 4,
                "frames": 8, "seed": i, "output": f"g{i}.mp4"} for i in range(n)]
        once = _timed_batch(_manifest(folder, "gen.jsonl", gen), folder / "once") / n
        each = sum(_timed_batch(_manifest(folder, f"gen{i}.jsonl", [job]), folder / f"each{i}")
                   for i, job in enumerate(gen)) / n
        print(f"tiny-model generate, {n} jobs (4 steps, 8 frames of 64x64):")
        print(f"  model loaded once : {once:.2f} s/job")
        print(f"  model loaded per job: {each:.2f} s/job")
        print(f"  saved per job by loading once: {each - once:.2f} s ({each / once:.2f}x)")


if __name__ == "__main__":
    main()
