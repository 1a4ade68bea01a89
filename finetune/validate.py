"""Validation samples during training: the held-out clips generated with the current weights.

Each written frame shows the clips side by side, generated on top and real below, as an mp4 and a
preview sheet under ``samples/``: the picture to watch while a run trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune.config import Config

__all__ = ["validate"]


def validate(pipe, unet, clips: list[dict[str, Any]], config: Config, step: int, output_dir: Path) -> Path:
    """Generate the validation clips with the current weights; write an mp4 and a preview sheet."""
    import cv2

    from pdedit.video import preview_sheet, to_uint8, write_video

    t = config.train
    pipe.unet = unet
    pipe.set_progress_bar_config(disable=True)
    w, h = config.data.size
    out = pipe(
        prompt=[c["caption"] for c in clips],
        first_frame=[c["frames"][0] for c in clips],
        last_frame=[c["frames"][-1] for c in clips],
        num_frames=config.data.num_frames,
        height=h,
        width=w,
        num_inference_steps=t.validation_steps,
        guidance_scale=t.validation_guidance,
        tau=t.validation_tau,
        generator=torch.Generator(device="cpu").manual_seed(t.seed),
        output_type="np",
    ).frames  # (B, F, H, W, 3) in [0, 1]
    # Each output frame shows the clips side by side: generated on top, the real clip below,
    # scaled up (nearest) so tiny training sizes are visible.
    scale = max(1, 128 // h)
    tiles = []
    for f in range(out.shape[1]):
        gen = np.concatenate([to_uint8(out[i : i + 1])[f] for i in range(len(clips))], axis=1)
        real = np.concatenate([c["frames"][f] for c in clips], axis=1)
        both = np.concatenate([gen, real], axis=0)
        tiles.append(cv2.resize(both, (both.shape[1] * scale, both.shape[0] * scale), interpolation=cv2.INTER_NEAREST))
    folder = output_dir / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    video = write_video(folder / f"step-{step:07d}.mp4", tiles, fps=pipe.config.fps, force=True)
    preview_sheet(tiles, folder / f"step-{step:07d}.png", columns=4, max_frames=len(tiles))
    return video
