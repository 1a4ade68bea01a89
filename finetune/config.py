"""Training configuration: YAML files with four sections (model, data, recipe, train) plus overrides.

``load_config("tiny.yaml", ["train.lr=1e-3", "recipe.eta=0.5"])`` reads the file over the defaults
below, then applies ``section.key=value`` overrides (values parsed as YAML, so ``[8, 8]`` is a list).
An unknown section or key is a BadInput that names it, so a typo never silently trains the wrong run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pdedit.errors import BadInput

__all__ = ["ModelConfig", "DataConfig", "RecipeConfig", "TrainConfig", "Config", "load_config", "CONFIG_DIR"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class ModelConfig:
    """Which model to train."""

    init: str = "tiny"  # "tiny" (random, built here) or a PixelDance diffusers folder
    pixel_space: bool = False  # tiny only: no VAE (an identity autoencoder), the UNet sees RGB frames
    unet: dict[str, Any] = field(default_factory=dict)  # tiny only: overrides of tiny_unet_config()
    prediction_type: str = "epsilon"  # epsilon | v_prediction (the scheduler's training target)
    scheduler: dict[str, Any] = field(default_factory=dict)  # overrides of the scheduler config (betas ...)
    seed: int = 0  # seed of the tiny model's random weights


@dataclass
class DataConfig:
    """What to train on: synthetic moving shapes, or a folder of videos (plus optional images)."""

    kind: str = "shapes"  # shapes | videos
    root: str | None = None  # videos: the data folder; manifest paths are relative to it
    manifest: str | None = None  # CSV (path,caption or WebVid videoid,name) or JSONL; None lists the folder
    num_frames: int = 8
    size: list[int] = field(default_factory=lambda: [64, 64])  # [W, H] of training frames
    fps: float | None = None  # clips sampled at this fps ...
    stride: int | None = None  # ... or every `stride` source frames (neither: the source fps)
    crop_scale: list[float] = field(default_factory=lambda: [0.8, 1.0])  # random crop area range
    images_root: str | None = None  # joint image training: a folder of images with captions
    images_manifest: str | None = None
    image_ratio: float = 0.0  # fraction of micro-batches that are image batches
    shapes: dict[str, Any] = field(default_factory=dict)  # MovingShapes options (num_shapes, kinds, ...)
    num_workers: int = 0
    shards: str | None = None  # a folder made by `python -m finetune.prepare`: train on its cached latents
    shuffle_buffer: int = 256  # shards: samples in the seeded shuffle buffer of each loader worker


@dataclass
class RecipeConfig:
    """The PixelDance recipe (see finetune.recipe.Recipe)."""

    eta: float = 0.25
    text_drop: float = 0.1
    image_noise: float = 0.1
    image_noise_timestep: int | None = None  # instead of image_noise: noise as the diffusion at this timestep
    last_choices: int = 3
    last_frame_transform: str = "none"  # none | sketch | pose | boxes
    transform_method: str | None = None


@dataclass
class TrainConfig:
    """The loop: optimisation, precision, logging, validation, checkpoints."""

    output_dir: str = "runs/finetune"
    max_steps: int = 1000
    batch_size: int = 8  # per process, per micro-batch
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # no | fp16 | bf16
    gradient_checkpointing: bool = False
    ema_decay: float = 0.0  # 0 disables EMA
    lora_rank: int = 0  # 0 trains the whole UNet; > 0 trains LoRA adapters (peft) plus conv_in
    lora_alpha: float | None = None
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    validate_every: int = 0  # 0: only at the end
    validation_clips: int = 4
    validation_steps: int = 20
    validation_tau: float = 1.0
    validation_guidance: float = 1.0
    tensorboard: bool = True


@dataclass
class Config:
    """A whole training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for YAML dumps and tensorboard hparams)."""
        return dataclasses.asdict(self)


def _set(section: Any, section_name: str, key: str, value: Any, source: str) -> None:
    """Set one field of a section, BadInput for a key the section does not have."""
    names = {f.name for f in dataclasses.fields(section)}
    if key not in names:
        raise BadInput(f"{source}: unknown key {section_name}.{key}; known keys: {', '.join(sorted(names))}")
    current = getattr(section, key)
    if isinstance(value, str) and isinstance(current, (int, float)) and not isinstance(current, bool):
        # YAML reads "1e-4" (no dot) as a string; numbers are what such a field holds.
        try:
            value = type(current)(float(value)) if isinstance(current, float) else int(value)
        except ValueError:
            raise BadInput(f"{source}: {section_name}.{key} must be a number, got {value!r}") from None
    setattr(section, key, value)


def _apply(config: Config, values: dict[str, Any], source: str) -> None:
    """Apply a nested dict {section: {key: value}} to ``config``."""
    sections = {f.name for f in dataclasses.fields(config)}
    for name, body in values.items():
        if name not in sections:
            raise BadInput(f"{source}: unknown section {name!r}; use {', '.join(sorted(sections))}")
        if not isinstance(body, dict):
            raise BadInput(f"{source}: section {name!r} must be a mapping of key: value")
        for key, value in body.items():
            _set(getattr(config, name), name, key, value, source)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (a path, or a name in finetune/configs) and apply ``section.key=value`` overrides."""
    config = Config()
    if path is not None:
        p = Path(path)
        if not p.is_file() and (CONFIG_DIR / p).is_file():
            p = CONFIG_DIR / p
        elif not p.is_file() and (CONFIG_DIR / f"{p}.yaml").is_file():
            p = CONFIG_DIR / f"{p}.yaml"
        if not p.is_file():
            raise BadInput(f"config {path} not found: pass a YAML file or one of {sorted(x.stem for x in CONFIG_DIR.glob('*.yaml'))}")
        try:
            values = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise BadInput(f"config {p} is not valid YAML: {err}") from None
        if not isinstance(values, dict):
            raise BadInput(f"config {p} must be a mapping of sections (model, data, recipe, train)")
        _apply(config, values, str(p))
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise BadInput(f"override {item!r} must look like section.key=value, e.g. train.lr=1e-4")
        dotted, raw = item.split("=", 1)
        section, key = dotted.split(".", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        _apply(config, {section: {key: value}}, f"override {item!r}")
    return config
