"""Overhead of the tau wrapper: the wan and ltx engines against their stock diffusers pipelines.

    python benchmarks/open_engines.py                       # tiny random models on the CPU
    python benchmarks/open_engines.py --frames 17 --size 64x64 --steps 10 --repeats 7

For each engine, the same job runs as (a) the stock pipeline call, (b) the engine at tau = 1 (nothing
installed: the engine's own input/output handling only) and (c) the engine at tau = 0.5 (the transformer
hooks, and for Wan the extra VAE encode of the without-last-frame condition). Runs are interleaved, one
torch thread, and timed in CPU seconds of this process (``time.process_time``), so other work on a
shared machine does not enter the ratio; the median of ``--repeats`` is reported.
With tiny models the VAE and text encoder weigh as much as the transformer, so these ratios are an upper
bound of the overhead on real models, where the transformer steps dominate. No GPU figures here: the
machine this was written on had none (the VRAM estimate is printed, not measured).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _cpu_seconds(fn) -> float:
    """CPU seconds of this process spent in one call of ``fn`` (one torch thread: its compute time)."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _stock_call(engine, job):
    """The stock pipeline call at the job's settings (what the engine runs with tau = 1)."""
    from PIL import Image

    pipe = engine.pipe
    plan = engine.plan(job)
    w, h = plan.model_size
    common = dict(prompt=job.prompt, height=h, width=w, num_frames=plan.model_frames,
                  num_inference_steps=job.steps, guidance_scale=job.guidance, output_type="np")
    if engine.name == "wan":
        return lambda: pipe(image=Image.fromarray(job.first), last_image=Image.fromarray(job.last),
                            generator=torch.Generator().manual_seed(job.seed), **common)
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    conditions = [LTXVideoCondition(image=Image.fromarray(job.first), frame_index=0),
                  LTXVideoCondition(image=Image.fromarray(job.last), frame_index=plan.model_frames - 1)]
    return lambda: pipe(conditions=conditions, frame_rate=job.fps, image_cond_noise_scale=0.0,
                        generator=torch.Generator().manual_seed(job.seed), **common)


def main() -> None:
    """Build tiny models, time stock vs engine, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", default="64x64", help="WxH (multiples of 32)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from pdedit.engines import EditJob, get_engine
    from pdedit.model_init import build_tiny_ltx_pipeline, build_tiny_wan_pipeline
    from pdedit.video import parse_size

    size = parse_size(args.size)
    rng = np.random.default_rng(0)
    first, last = (rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(2))
    print(f"tiny models, CPU, 1 thread, CPU seconds: {args.frames} frames at {size[0]}x{size[1]}, "
          f"{args.steps} steps, guidance 2, median of {args.repeats}")
    print(f"{'engine':<6} {'stock s':>8} {'tau=1 s':>8} {'ratio':>6} {'tau=.5 s':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (("wan", build_tiny_wan_pipeline), ("ltx", build_tiny_ltx_pipeline)):
            folder = Path(tmp) / name
            build(folder)
            engine = get_engine(name, folder)
            engine.pipe.set_progress_bar_config(disable=True)

            def job(tau: float) -> EditJob:
                return EditJob(source=None, first=first, last=last, num_frames=args.frames, fps=16.0, size=size,
                               prompt="a red fox runs", tau=tau, steps=args.steps, guidance=2.0, seed=0)

            runs = {"stock": _stock_call(engine, job(1.0)),
                    "tau1": lambda: list(engine.render(job(1.0))),
                    "tau05": lambda: list(engine.render(job(0.5)))}
            for fn in runs.values():  # warm-up
                fn()
            times: dict[str, list[float]] = {k: [] for k in runs}
            for _ in range(args.repeats):  # interleaved, so load changes hit all three alike
                for key, fn in runs.items():
                    times[key].append(_cpu_seconds(fn))
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{name:<6} {med['stock']:8.3f} {med['tau1']:8.3f} {med['tau1'] / med['stock']:6.2f} "
                  f"{med['tau05']:9.3f} {med['tau05'] / med['stock']:6.2f}")


if __name__ == "__main__":
    main()
