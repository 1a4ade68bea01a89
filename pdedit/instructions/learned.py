"""Learned keyframe edits from local weights: ``instruct:<text>`` and ``img2img:<text>``.

``instruct`` runs diffusers' StableDiffusionInstructPix2PixPipeline (Brooks et al. 2023), the
image editor the PixelDance paper (arXiv 2311.10982, §4.4) pairs with zero-shot video editing;
``img2img`` runs StableDiffusionImg2ImgPipeline. Both load from a local folder only: nothing is
downloaded, and a missing or wrong folder is a MissingModel error saying how to get one.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from pdedit.errors import BadInput, MissingModel

__all__ = ["LEARNED_EDITS", "learned_edit", "load_edit_pipeline"]

logger = logging.getLogger(__name__)

# spec kind -> (diffusers pipeline class, UNet input channels it needs, a public model to download).
LEARNED_EDITS = {
    "instruct": ("StableDiffusionInstructPix2PixPipeline", 8, "timbrooks/instruct-pix2pix"),
    "img2img": ("StableDiffusionImg2ImgPipeline", 4, "stable-diffusion-v1-5/stable-diffusion-v1-5"),
}


def _how_to_get(kind: str) -> str:
    """The sentence telling a user how to fetch a model for ``kind``."""
    repo = LEARNED_EDITS[kind][2]
    return f"download one with `huggingface-cli download {repo} --local-dir DIR` and pass --edit-model DIR"


def _check_folder(kind: str, edit_model: str | Path | None) -> Path:
    """The model folder, or MissingModel naming what is wrong and how to fix it."""
    if edit_model is None:
        raise MissingModel(f"{kind}: edits need a local diffusers model folder: {_how_to_get(kind)}")
    folder = Path(edit_model)
    index = folder / "model_index.json"
    if not index.is_file():
        raise MissingModel(f"--edit-model {folder} is not a diffusers model folder (no model_index.json): "
                           f"{_how_to_get(kind)}")
    unet_config = folder / "unet" / "config.json"
    if unet_config.is_file():
        channels = json.loads(unet_config.read_text()).get("in_channels")
        wanted = LEARNED_EDITS[kind][1]
        if channels != wanted:
            other = next(k for k, v in LEARNED_EDITS.items() if v[1] == channels) if channels in (4, 8) else None
            hint = f" (it is a model for {other}:)" if other else ""
            raise MissingModel(f"--edit-model {folder} has a UNet with {channels} input channels{hint}, "
                               f"but {kind}: needs {wanted}: {_how_to_get(kind)}")
    return folder


@functools.lru_cache(maxsize=2)
def load_edit_pipeline(kind: str, folder: str):
    """Load (once per process) the diffusers pipeline for ``kind`` from a local folder."""
    import diffusers
    import torch

    class_name = LEARNED_EDITS[kind][0]
    dtype = torch.float16 if torch.cuda.is_available() else torch.float32
    try:
        pipe = getattr(diffusers, class_name).from_pretrained(folder, torch_dtype=dtype, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as err:  # torn or foreign files
        raise MissingModel(f"could not load {class_name} from {folder}: {err}; {_how_to_get(kind)}") from err
    device = "cuda" if torch.cuda.is_available() else "cpu"
    logger.info("loaded %s from %s on %s", class_name, folder, device)
    return pipe.to(device)


def learned_edit(frame: np.ndarray, kind: str, text: str, *, edit_model: str | Path | None,
                 steps: int = 20, seed: int = 0, progress: bool = False) -> np.ndarray:
    """Edit ``frame`` with InstructPix2Pix (``kind="instruct"``) or SD img2img (``"img2img"``).

    Args:
        frame: uint8 RGB (H, W, 3).
        kind: "instruct" or "img2img".
        text: the instruction (instruct) or the target prompt (img2img).
        edit_model: a local diffusers folder of the matching pipeline.
        steps: denoising steps (img2img runs about strength * steps of them).
        seed: seed of the generator, so the same call gives the same edit.
        progress: show diffusers' progress bar.

    Returns:
        the edited frame, uint8 RGB at the input size.
    """
    import torch

    if kind not in LEARNED_EDITS:
        raise BadInput(f"unknown learned edit {kind!r}; use one of {', '.join(LEARNED_EDITS)}")
    if steps < 1:
        raise BadInput(f"steps must be >= 1, got {steps}")
    folder = _check_folder(kind, edit_model)
    pipe = load_edit_pipeline(kind, str(folder.resolve()))
    pipe.set_progress_bar_config(disable=not progress)

    h, w = frame.shape[:2]
    # The VAE downsamples by 8: run at the nearest multiple of 8 and resize back.
    w8, h8 = max(8, round(w / 8) * 8), max(8, round(h / 8) * 8)
    image = frame if (w8, h8) == (w, h) else cv2.resize(frame, (w8, h8), interpolation=cv2.INTER_AREA)
    image = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W) in [0, 1]
    generator = torch.Generator("cpu").manual_seed(seed)
    options = {"image_guidance_scale": 1.5} if kind == "instruct" else {"strength": 0.75}
    result = pipe(prompt=text, image=image, num_inference_steps=steps, guidance_scale=7.5,
                  generator=generator, output_type="np", **options).images[0]  # (H, W, 3) in [0, 1]
    out = np.clip(result * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if out.shape[:2] != (h, w):
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
    return out
