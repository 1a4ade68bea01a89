"""The recipe check: does the PixelDance recipe learn here, and does tau steer the end state?

Trains the tiny pixel-space model on moving shapes (finetune/configs/tiny.yaml), sketch-tunes a copy
(sketch.yaml, initialised from the image-tuned model), then samples held-out clips with tau in
{0, 0.25, 0.5, 1} and prints, measured in PIXEL space (the model has no VAE: frames are its latents):

- first-frame adherence: MSE (frames in [0, 1]) and shape-centroid error (px) of generated frame 0
  against the first-frame instruction;
- last-frame adherence: centroid error (px) and MSE of the generated last frame against the
  last-frame instruction; it should fall as tau grows, and at tau = 0 sit at the no-instruction level;
- sketch instructions: given an XDoG sketch of the real end state at tau = 1, the centroid error of the
  generated end state for the sketch-tuned model against the image-tuned one.

Usage (alone on a 2-core CPU the full run is ~10-15 min; --quick is a few minutes):
    python benchmarks/recipe_check.py [--quick] [--out runs/recipe_check] [--steps N] [--sketch-steps M]
        [--clips K] [--sample-steps S] [--threads T] [--reuse]
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

from finetune.config import load_config  # noqa: E402
from finetune.data import shape_centroid  # noqa: E402
from finetune.data import build_dataset  # noqa: E402
from finetune.train import train  # noqa: E402
from pdedit.instructions import convert  # noqa: E402
from pdedit import load_pipeline, to_uint8  # noqa: E402

TAUS = (0.0, 0.25, 0.5, 1.0)
CENTROID_THRESHOLD = 40  # grey levels: weaker differences from the black background are sampling noise


def centroid(frame: np.ndarray) -> np.ndarray:
    """Shape centre (x, y) in px of a frame on black, ignoring faint noise below the threshold."""
    clean = np.where(frame.max(axis=-1, keepdims=True) > CENTROID_THRESHOLD, frame, 0).astype(np.uint8)
    return shape_centroid(clean)


def sample(pipe, clips, last_frames, tau: float, steps: int, seed: int) -> np.ndarray:
    """Generate one video per clip: (K, F, H, W, 3) uint8."""
    first = [c["frames"][0] for c in clips]
    w = clips[0]["frames"].shape[2]
    h = clips[0]["frames"].shape[1]
    out = pipe(
        prompt=[c["caption"] for c in clips], first_frame=first, last_frame=last_frames,
        num_frames=clips[0]["frames"].shape[0], height=h, width=w, num_inference_steps=steps,
        guidance_scale=1.0, tau=tau, generator=torch.Generator().manual_seed(seed), output_type="np",
    ).frames
    return np.stack([np.stack(to_uint8(out[i : i + 1])) for i in range(len(clips))])


def mean_se(values: list[float]) -> str:
    """'mean ± standard error'."""
    a = np.asarray(values, np.float64)
    return f"{a.mean():.3f} ± {a.std(ddof=1) / np.sqrt(len(a)):.3f}"


def scores(videos: np.ndarray, clips) -> dict[str, list[float]]:
    """Per clip: first/last-frame MSE and centroid errors against the real first/last frames."""
    out: dict[str, list[float]] = {"first_mse": [], "first_px": [], "last_mse": [], "last_px": []}
    for video, clip in zip(videos, clips):
        real_first, real_last = clip["frames"][0], clip["frames"][-1]
        out["first_mse"].append(float(np.mean((video[0] / 255.0 - real_first / 255.0) ** 2)))
        out["last_mse"].append(float(np.mean((video[-1] / 255.0 - real_last / 255.0) ** 2)))
        out["first_px"].append(float(np.linalg.norm(centroid(video[0]) - centroid(real_first))))
        out["last_px"].append(float(np.linalg.norm(centroid(video[-1]) - centroid(real_last))))
    return out


def _trained(config, run_dir: Path, reuse: bool) -> tuple[Path, float]:
    """The run's final model folder (trained now, resuming its checkpoints, unless ``reuse`` finds one) and seconds."""
    t0 = time.perf_counter()
    final = run_dir / "final"
    if not (reuse and final.is_dir()):
        final = train(config, resume="latest")
    return final, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short training, 48 clips, 10 sampling steps")
    parser.add_argument("--out", default="runs/recipe_check")
    parser.add_argument("--steps", type=int, default=None, help="image-tuning steps (default 3000, quick 600)")
    parser.add_argument("--sketch-steps", type=int, default=None, help="sketch-tuning steps (default 1000, quick 200)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clips", type=int, default=None, help="held-out clips (default 128, quick 48)")
    parser.add_argument("--sample-steps", type=int, default=None, help="DDIM steps (default 25, quick 10)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy CPU)")
    parser.add_argument("--reuse", action="store_true", help="reuse trained models found in --out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (600 if args.quick else 3000)
    sketch_steps = args.sketch_steps or (200 if args.quick else 1000)
    n_clips = args.clips or (48 if args.quick else 128)
    sample_steps = args.sample_steps or (10 if args.quick else 25)
    out = Path(args.out)
    common = [f"train.lr={args.lr}", "train.ema_decay=0.999", "train.validate_every=0", "train.validation_clips=2"]

    # 1. Image-tuned model: the paper's recipe on moving shapes
    image_cfg = load_config("tiny", [*common, f"train.output_dir={out / 'image'}", f"train.max_steps={steps}",
                                     f"train.checkpoint_every={max(steps // 4, 1)}"])
    image_model, t_image = _trained(image_cfg, out / "image", args.reuse)

    # 2. Sketch-tuned model: the image-tuned model, fine-tuned with sketched last-frame instructions
    sketch_cfg = load_config("sketch", [*common, f"model.init={image_model}", f"train.output_dir={out / 'sketch'}",
                                        f"train.max_steps={sketch_steps}", "train.warmup_steps=10",
                                        f"train.checkpoint_every={max(sketch_steps // 2, 1)}"])
    sketch_model, t_sketch = _trained(sketch_cfg, out / "sketch", args.reuse)

    # 3. Held-out clips (another seed of the same generator)
    held_out = build_dataset(image_cfg, held_out=True)
    clips = [held_out[i] for i in range(n_clips)]
    lasts = [c["frames"][-1] for c in clips]
    static = [float(np.linalg.norm(centroid(c["frames"][0]) - centroid(c["frames"][-1]))) for c in clips]

    # 4. tau sweep with the image-tuned model
    pipe = load_pipeline(image_model)
    pipe.set_progress_bar_config(disable=True)
    results: dict[str, object] = {"space": "pixel", "clips": n_clips, "train_steps": steps,
                                  "sketch_steps": sketch_steps, "sample_steps": sample_steps,
                                  "train_seconds": round(t_image, 1), "sketch_seconds": round(t_sketch, 1)}
    print(f"recipe check: tiny PixelDance model in pixel space (8 frames of "
          f"{clips[0]['frames'].shape[2]}x{clips[0]['frames'].shape[1]}), {steps} image-tuning steps "
          f"({t_image / 60:.1f} min), {sketch_steps} sketch-tuning steps ({t_sketch / 60:.1f} min); "
          f"{n_clips} held-out clips, DDIM {sample_steps} steps, guidance 1")
    print(f"reference: shape moves {mean_se(static)} px from first to last frame (a model that does not move)")
    print(f"{'tau':>5} | {'first MSE':>15} | {'first px':>15} | {'last px':>15} | {'last MSE':>15}")
    sweep = {}
    for tau in TAUS:
        s = scores(sample(pipe, clips, lasts, tau, sample_steps, seed=1), clips)
        sweep[str(tau)] = {k: float(np.mean(v)) for k, v in s.items()}
        print(f"{tau:5.2f} | {mean_se(s['first_mse']):>15} | {mean_se(s['first_px']):>15} | "
              f"{mean_se(s['last_px']):>15} | {mean_se(s['last_mse']):>15}", flush=True)
    results["tau_sweep"] = sweep
    ratio = sweep["1.0"]["last_px"] / max(sweep["0.0"]["last_px"], 1e-9)
    print(f"last-frame error at tau=1 / tau=0: {ratio:.2f} (below 1: the last frame steers the end state)")

    # 5. Sketch instructions: sketch-tuned vs image-tuned model, same sketches, tau = 1
    sketches = [convert(f, "sketch", method="xdog") for f in lasts]
    sketch_pipe = load_pipeline(sketch_model)
    sketch_pipe.set_progress_bar_config(disable=True)
    by_model = {}
    for name, p in (("sketch-tuned", sketch_pipe), ("image-tuned", pipe)):
        s = scores(sample(p, clips, sketches, 1.0, sample_steps, seed=2), clips)
        by_model[name] = float(np.mean(s["last_px"]))
        print(f"sketch of the end state, tau=1, {name:>12}: last-frame centroid error {mean_se(s['last_px'])} px",
              flush=True)
    results["sketch"] = by_model
    print(f"sketch-tuned / image-tuned centroid error: "
          f"{by_model['sketch-tuned'] / max(by_model['image-tuned'], 1e-9):.2f}")
    (out / "recipe_check.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
