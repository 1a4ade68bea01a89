"""The recipe check: does the PixelDance recipe learn here, does tau steer the end state, and does
sketch tuning make a sketch usable as the last frame?

Trains the two moving-shapes models of `finetune.shapes` (8 frames of 8x8, pixel space): image-tuned
(finetune/configs/tiny.yaml, the paper's recipe) from scratch, then sketch-tuned (configs/sketch.yaml: the
last-frame instruction is a black silhouette on white) from the image-tuned model; then measures on held-out
clips (another seed of the generator) with `pdedit.evaluate.tau`, every figure a mean ± standard error over the clips:

0. before any model: how far from the real square's centre the ink of an XDoG and of a silhouette
   sketch of the last frame is centred (what each sketch form tells of the end state);
1. the image-tuned model against tau, given the real last frame: first-frame error flat, last-frame
   error falling as tau grows;
2. both models against tau, given a silhouette sketch of the real last frame;
3. the headline: at the largest tau (1), how much closer to the real end state the sketch-tuned model lands than
   the image-tuned one given the same sketches (1 - ratio of their mean errors; standard error from a
   paired bootstrap over clips).

Usage (the sketch model starts from the image model, so `--train sketch` trains or reuses the image model
first; a finished run of the same config is reused, so the plain command after them only measures):
    python benchmarks/recipe_check.py [--out runs/recipe_check] [--train both|image|sketch] [--steps N]
        [--sketch-steps M] [--clips K] [--sample-steps S] [--taus 0,0.5,1] [--threads T] [--quick]
        [--models IMAGE_DIR SKETCH_DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.shapes import SHAPES_STEPS, SKETCH_STEPS, shapes_config, train_or_reuse  # noqa: E402
from finetune.data import build_dataset  # noqa: E402
from pdedit.evaluate.tau import DEFAULT_TAUS, parse_taus, plot_curves, tau_curve  # noqa: E402
from pdedit import load_pipeline  # noqa: E402

SKETCH = ("sketch", "silhouette")  # the instruction kind and method the sketch-tuned model was trained on


def closer(sketch_px: np.ndarray, image_px: np.ndarray, resamples: int = 2000) -> tuple[float, float]:
    """1 - mean(sketch)/mean(image) over paired per-clip errors, and its paired-bootstrap standard error."""
    value = 1.0 - sketch_px.mean() / image_px.mean()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(sketch_px), (resamples, len(sketch_px)))
    boot = 1.0 - sketch_px[idx].mean(axis=1) / image_px[idx].mean(axis=1)
    return float(value), float(boot.std(ddof=1))


def sketch_offset(clips, method: str) -> np.ndarray:
    """Per clip: distance (px) from the centre of a sketch's ink to the real square's centre (no model)."""
    from pdedit.evaluate.tau import object_centre
    from pdedit.instructions import convert

    return np.array([np.linalg.norm(object_centre(convert(c["frames"][-1], "sketch", method=method)) - c["centers"][-1, 0])
                     for c in clips])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 + 100 training steps, 32 clips, 10 sampling steps")
    parser.add_argument("--out", default="runs/recipe_check")
    parser.add_argument("--train", choices=("both", "image", "sketch"), default="both",
                        help="train (or reuse) only this model and stop, or both and measure (default)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training steps of the image model (default {SHAPES_STEPS}, quick 300)")
    parser.add_argument("--sketch-steps", type=int, default=None,
                        help=f"sketch-tuning steps from the image model (default {SKETCH_STEPS}, quick 100)")
    parser.add_argument("--clips", type=int, default=None, help="held-out clips (default 128, quick 32)")
    parser.add_argument("--sample-steps", type=int, default=None, help="DDIM steps (default 25, quick 10)")
    parser.add_argument("--taus", default=",".join(f"{t:g}" for t in DEFAULT_TAUS), help="tau values, comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy CPU)")
    parser.add_argument("--models", nargs=2, metavar=("IMAGE_DIR", "SKETCH_DIR"), default=None,
                        help="measure these two model folders instead of training (e.g. checkpoints of a run part "
                             "way; --steps then only labels them)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (300 if args.quick else SHAPES_STEPS)
    sketch_steps = args.sketch_steps or (100 if args.quick else SKETCH_STEPS)
    taus = tuple(sorted(parse_taus(args.taus)))  # the headline reads the first and the last
    n_clips = args.clips or (32 if args.quick else 128)
    sample_steps = args.sample_steps or (10 if args.quick else 25)
    out = Path(args.out)

    # 1. The image model from scratch, then the sketch model from it (a finished run of the same config is reused)
    configs = {"image": shapes_config("image", out / "image", steps)}
    models, seconds = {}, {}
    if args.models:
        models = dict(zip(("image", "sketch"), map(Path, args.models)))
        seconds = {"image": 0.0, "sketch": 0.0}
        out.mkdir(parents=True, exist_ok=True)
    for kind in () if args.models else ("image",) if args.train == "image" else ("image", "sketch"):
        if kind == "sketch":
            configs["sketch"] = shapes_config("sketch", out / "sketch", sketch_steps, init=models["image"])
        t0 = time.perf_counter()
        models[kind] = train_or_reuse(configs[kind])
        seconds[kind] = round(time.perf_counter() - t0, 1)
    if args.train != "both":
        print(f"{args.train}-tuned model: {models[args.train]} ({seconds[args.train] / 60:.1f} min)")
        return

    # 2. Held-out clips: another seed of the same generator
    held_out = build_dataset(configs["image"], held_out=True)
    clips = [held_out[i] for i in range(n_clips)]
    pipes = {kind: load_pipeline(path) for kind, path in models.items()}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    size = clips[0]["frames"].shape
    print(f"recipe check: tiny PixelDance models in pixel space ({size[0]} frames of {size[2]}x{size[1]}), "
          f"image-tuned {steps} steps from scratch, sketch-tuned {sketch_steps} more from it (this run trained for "
          f"{seconds['image'] / 60:.1f} + "
          f"{seconds['sketch'] / 60:.1f} min; 0 = reused); {n_clips} held-out clips, DDIM {sample_steps} steps, "
          f"guidance 1, seed 1 at every tau")

    # What each sketch form tells of the end state, before any model: where its ink is centred
    for method in ("xdog", SKETCH[1]):
        off = sketch_offset(clips, method)
        print(f"{method} sketch of the last frame: its ink is centred {off.mean():.2f} ± "
              f"{off.std(ddof=1) / np.sqrt(len(off)):.2f} px from the real square's centre")

    # 3. tau curves: the image-tuned model with real last frames; both models with sketches of them
    kw = {"steps": sample_steps, "guidance": 1.0, "seed": 1, "batch_size": 64}
    curves = [tau_curve(pipes["image"], clips, taus, name="image-tuned", **kw),
              tau_curve(pipes["image"], clips, taus, instruction=SKETCH[0], method=SKETCH[1],
                        name="image-tuned", **kw),
              tau_curve(pipes["sketch"], clips, taus, instruction=SKETCH[0], method=SKETCH[1],
                        name="sketch-tuned", **kw)]
    print(f"the square moves {curves[0].moved_px.mean():.3f} ± {curves[0].to_dict()['moved_px']['se']:.3f} px "
          f"from first to last frame (the error of a model that copies the first frame)")
    for curve in curves:
        print(f"\n{curve.model}, given the {curve.instruction} last frame:\n{curve.table()}", flush=True)
    image_given_frame, image_given_sketch, sketch_given_sketch = curves
    drop = image_given_frame.mean("last_px")[-1] / image_given_frame.mean("last_px")[0]
    print(f"\nimage-tuned, last-frame error at tau={taus[-1]:g} / tau={taus[0]:g}: {drop:.2f} "
          f"(below 1: the last frame steers the end state)")

    # 4. The headline: same sketches, the largest tau
    s_px, i_px = sketch_given_sketch.scores["last_px"][-1], image_given_sketch.scores["last_px"][-1]
    value, se = closer(s_px, i_px)
    print(f"sketch of the end state, tau={taus[-1]:g}: sketch-tuned {s_px.mean():.3f} ± {s_px.std(ddof=1) / np.sqrt(len(s_px)):.3f} px, "
          f"image-tuned {i_px.mean():.3f} ± {i_px.std(ddof=1) / np.sqrt(len(i_px)):.3f} px: "
          f"sketch-tuned {100 * value:.0f}% ± {100 * se:.0f}% closer")
    plot = plot_curves(curves, out / "tau_curves.png",
                       title=f"moving squares, {n_clips} held-out clips: end-state error against tau")
    results = {"clips": n_clips, "train_steps": {"image": steps, "sketch": sketch_steps}, "sample_steps": sample_steps,
               "train_seconds": seconds,
               "curves": [c.to_dict() for c in curves], "sketch_closer": {"value": value, "se": se},
               "plot": str(plot)}
    (out / "recipe_check.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"plot: {plot}")


if __name__ == "__main__":
    main()
