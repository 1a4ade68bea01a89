"""The PixelDance training recipe (Zeng et al., arXiv 2311.10982, §3.2): instructions and loss.

Per sample: the first-frame instruction is the clip's real first frame; the last-frame instruction is
one of its last three frames, chosen at random (so the model follows the end state without copying
it exactly); it is dropped with probability ``eta``; the caption is dropped with probability
``text_drop`` (classifier-free guidance); c_image is perturbed with noise. The loss is the MSE of the
scheduler's training target (epsilon or v). Layout, noise and dropping are `pdedit.conditioning`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pdedit.conditioning import build_c_image, drop_last_frame, perturb_c_image
from pdedit.errors import BadInput

__all__ = [
    "Recipe",
    "LAST_FRAME_TRANSFORMS",
    "pick_last_index",
    "draw_choices",
    "draw_sample",
    "collate",
    "to_tensor",
    "make_c_image",
    "c_image_noise",
    "training_target",
    "diffusion_loss",
]

LAST_FRAME_TRANSFORMS = ("none", "sketch", "pose", "boxes")


@dataclass(frozen=True)
class Recipe:
    """Settings of the PixelDance recipe; defaults are the paper's where it states them."""

    eta: float = 0.25  # probability of dropping the last-frame instruction (paper: 0.25)
    text_drop: float = 0.1  # probability of an empty caption, for classifier-free guidance
    image_noise: float = 0.1  # std of the noise on the instruction frames of c_image
    # Or: forward-diffuse the instruction frames to this DDPM timestep, sqrt(abar_t) c + sqrt(1 - abar_t) eps,
    # as the moving-shapes reference run did (t = 100: noise std 0.32 under the linear 1e-4..0.02 betas).
    # Then image_noise must be 0: one of the two says how c_image is perturbed.
    image_noise_timestep: int | None = None
    last_choices: int = 3  # the last-frame instruction is one of the clip's last `last_choices` frames
    last_frame_transform: str = "none"  # none | sketch | pose | boxes (pdedit.instructions.convert)
    transform_method: str | None = None  # converter method, e.g. "xdog" for sketches

    def __post_init__(self) -> None:
        for name in ("eta", "text_drop"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise BadInput(f"recipe.{name} must be in [0, 1], got {value}")
        if self.image_noise < 0:
            raise BadInput(f"recipe.image_noise must be >= 0, got {self.image_noise}")
        t = self.image_noise_timestep
        if t is not None:
            if isinstance(t, bool) or not isinstance(t, int) or t < 0:
                raise BadInput(f"recipe.image_noise_timestep must be a whole number >= 0 (a DDPM timestep, e.g. "
                               f"100), or null for image_noise's std, got {t!r}")
            if self.image_noise != 0:
                raise BadInput(f"recipe.image_noise_timestep={t} and recipe.image_noise={self.image_noise} both set "
                               f"the noise on c_image: set recipe.image_noise=0 to noise at the timestep")
        if self.last_choices < 1:
            raise BadInput(f"recipe.last_choices must be >= 1, got {self.last_choices}")
        if self.last_frame_transform not in LAST_FRAME_TRANSFORMS:
            raise BadInput(
                f"recipe.last_frame_transform {self.last_frame_transform!r} is not one of "
                f"{', '.join(LAST_FRAME_TRANSFORMS)}"
            )


def c_image_noise(recipe: Recipe, scheduler: Any) -> tuple[float, float]:
    """(scale, std) of c_image's perturbation ``scale * c + std * eps`` under ``recipe`` and the training scheduler.

    ``(1, image_noise)``, or with ``image_noise_timestep`` t: ``(sqrt(abar_t), sqrt(1 - abar_t))`` from the
    scheduler's own schedule, so "noised at timestep t" means what the diffusion itself does at t.
    """
    t = recipe.image_noise_timestep
    if t is None:
        return 1.0, float(recipe.image_noise)
    total = int(scheduler.config.num_train_timesteps)
    if t >= total:
        raise BadInput(f"recipe.image_noise_timestep={t} is past the scheduler's {total} training timesteps: "
                       f"use 0..{total - 1}")
    abar = float(scheduler.alphas_cumprod[t])
    return abar ** 0.5, (1.0 - abar) ** 0.5


def pick_last_index(num_frames: int, rng: np.random.Generator, choices: int = 3) -> int:
    """Index of the last-frame instruction: uniform over the clip's last ``choices`` frames (§3.2)."""
    lo = max(0, num_frames - choices)
    return int(rng.integers(lo, num_frames))


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (3, ..., H, W) in [-1, 1]; (F, H, W, 3) becomes (3, F, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).float().div(127.5).sub(1.0)
    return t.movedim(-1, 0)


def _transform(frame: np.ndarray, frames: np.ndarray, recipe: Recipe) -> np.ndarray:
    """Turn the last-frame instruction into a sketch/pose/boxes image (paper §4.4 sketch instructions)."""
    from pdedit.instructions import convert

    kwargs: dict[str, Any] = {}
    if recipe.transform_method is not None:
        kwargs["method"] = recipe.transform_method
    if recipe.last_frame_transform == "boxes":
        kwargs["video_frames"] = list(frames)  # moving-object boxes need the clip's motion
    out = convert(frame, recipe.last_frame_transform, **kwargs)
    if out.shape != frame.shape:
        import cv2

        out = cv2.resize(out, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_AREA)
    return out


def draw_choices(num_frames: int, recipe: Recipe, rng: np.random.Generator) -> tuple[bool, int, bool]:
    """The recipe's random choices for one clip, in this order: (drop the text, last_index, keep_last).

    One definition for pixel clips (``draw_sample``) and cached latents (``finetune.shards``), so both
    draw the same choices from the same generator.
    """
    drop_text = bool(rng.random() < recipe.text_drop)
    if num_frames == 1:
        return drop_text, 0, False
    last_index = pick_last_index(num_frames, rng, recipe.last_choices)
    keep_last = bool(rng.random() >= recipe.eta)
    return drop_text, last_index, keep_last


def draw_sample(item: dict[str, Any], recipe: Recipe, rng: np.random.Generator) -> dict[str, Any]:
    """Draw the recipe's random choices for one clip and return tensors for training.

    ``item["frames"]`` is (F, H, W, 3) uint8. Returns ``video`` (3, F, H, W) in [-1, 1], ``first`` and
    ``last`` (3, H, W), ``keep_last`` (bool), ``last_index`` (int), ``caption`` (str, "" when dropped),
    ``is_image`` (bool). One-frame items (images) carry no instructions: joint image training is
    text-to-image with the temporal layers bypassed.
    """
    frames = item["frames"]
    num_frames = frames.shape[0]
    drop_text, last_index, keep_last = draw_choices(num_frames, recipe, rng)
    caption = "" if drop_text else item.get("caption", "")
    if num_frames == 1:
        video = to_tensor(frames)
        zeros = torch.zeros_like(video[:, 0])
        return {"video": video, "first": zeros, "last": zeros, "keep_last": False, "last_index": 0,
                "caption": caption, "is_image": True}
    last = frames[last_index]
    if recipe.last_frame_transform != "none":
        last = _transform(last, frames, recipe)
    return {
        "video": to_tensor(frames),  # (3, F, H, W)
        "first": to_tensor(frames[0]),  # (3, H, W): the real first frame (§3.2)
        "last": to_tensor(last),  # (3, H, W)
        "keep_last": keep_last,
        "last_index": last_index,
        "caption": caption,
        "is_image": False,
    }


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack drawn samples into a batch: tensors stacked, strings and flags as lists/tensors."""
    return {
        "video": torch.stack([s["video"] for s in samples]),  # (B, 3, F, H, W)
        "first": torch.stack([s["first"] for s in samples]),  # (B, 3, H, W)
        "last": torch.stack([s["last"] for s in samples]),  # (B, 3, H, W)
        "keep_last": torch.tensor([s["keep_last"] for s in samples], dtype=torch.bool),
        "last_index": torch.tensor([s["last_index"] for s in samples]),
        "caption": [s["caption"] for s in samples],
        "is_image": all(s["is_image"] for s in samples),
    }


def make_c_image(
    f_first: torch.Tensor,
    f_last: torch.Tensor,
    keep_last: torch.Tensor,
    num_frames: int,
    image_noise: float,
    generator: torch.Generator | None = None,
    scale: float = 1.0,
) -> torch.Tensor:
    """c_image for a training batch: layout, last frame dropped where ``keep_last`` is False, then noise.

    The instruction frames become ``scale * f + image_noise * eps`` (`c_image_noise` gives both); a dropped
    frame stays an exact zero.
    """
    c_image = build_c_image(f_first, f_last, num_frames)  # (B, C, F, h, w)
    c_image = drop_last_frame(c_image, keep_last)
    if scale != 1.0:
        c_image = c_image * scale  # zeros stay zeros, so perturb_c_image still finds the instruction frames
    return perturb_c_image(c_image, image_noise, generator)


def training_target(scheduler: Any, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the model is trained to predict under the scheduler's ``prediction_type``: epsilon or v."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, timesteps)
    raise BadInput(f"scheduler prediction_type {kind!r} is not supported for training: use epsilon or v_prediction")


def diffusion_loss(
    unet: torch.nn.Module,
    scheduler: Any,
    x0: torch.Tensor,
    c_image: torch.Tensor,
    text_embeddings: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """MSE between the UNet's prediction on ``[z_t, c_image]`` and the scheduler's target.

    ``x0`` and ``c_image`` are (B, C, F, h, w); the UNet sees them concatenated on channels (B, 2C, F, h, w).
    """
    b = x0.shape[0]
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator, device=x0.device)
    z_t = scheduler.add_noise(x0, noise, t)
    model_input = torch.cat([z_t, c_image.to(z_t.dtype)], dim=1)  # (B, 2C, F, h, w)
    pred = unet(model_input, t, encoder_hidden_states=text_embeddings).sample
    target = training_target(scheduler, x0, noise, t)
    return F.mse_loss(pred.float(), target.float())
