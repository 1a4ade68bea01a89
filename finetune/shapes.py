"""The moving-shapes models of the recipe check and the notebooks: their configs, and train-or-reuse.

Two tiny pixel-space models on 8 frames of 8x8 moving squares, each trained from scratch:
``image`` (configs/tiny.yaml, the paper's recipe) and ``sketch`` (configs/sketch.yaml, the last-frame
instruction turned into a silhouette sketch). `benchmarks/recipe_check.py` measures them; the
notebooks train them, or reuse a finished run of the same config.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import yaml

from finetune.config import Config, load_config
from pdedit.errors import BadInput

logger = logging.getLogger(__name__)

__all__ = ["SHAPES_MODELS", "SHAPES_OVERRIDES", "SHAPES_STEPS", "shapes_config", "train_or_reuse"]

SHAPES_MODELS = {"image": "tiny", "sketch": "sketch"}  # model -> its config in finetune/configs
# Over the configs' defaults: a higher learning rate with EMA reaches clean samples in 3000 steps on a
# CPU; validation sheets only at the end (the measurements are the recipe check's).
SHAPES_STEPS = 3000  # training steps of each model in the recipe check and the notebooks (the reference run)
SHAPES_OVERRIDES = ("train.lr=0.001", "train.ema_decay=0.999", "train.validate_every=0", "train.validation_clips=2")


def shapes_config(kind: str, output_dir: str | Path, steps: int = SHAPES_STEPS, extra: Sequence[str] = ()) -> Config:
    """The config of the ``image`` or ``sketch`` moving-shapes model, trained for ``steps`` into ``output_dir``."""
    if kind not in SHAPES_MODELS:
        raise BadInput(f"moving-shapes model {kind!r} is not one of {', '.join(SHAPES_MODELS)}")
    return load_config(SHAPES_MODELS[kind], [*SHAPES_OVERRIDES, f"train.output_dir={output_dir}",
                                             f"train.max_steps={steps}", f"train.checkpoint_every={max(steps // 4, 1)}",
                                             *extra])


def _same_run(config: Config, saved: Path) -> bool:
    """Whether the run folder's config.yaml is ``config`` (the output folder aside: runs may be moved)."""
    if not saved.is_file():
        return False
    old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    new = config.to_dict()
    for c in (old, new):
        c.get("train", {}).pop("output_dir", None)
    return old == new


def train_or_reuse(config: Config) -> Path:
    """``output_dir/final`` when a finished run of this same config is there; else train (resuming)."""
    from finetune.train import train

    run = Path(config.train.output_dir)
    final = run / "final"
    if (final / "model_index.json").is_file() and _same_run(config, run / "config.yaml"):
        logger.info("reusing %s", final)
        return final
    return train(config, resume="latest")
