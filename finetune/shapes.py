"""The moving-shapes models of the recipe check and the notebooks: their configs, and train-or-reuse.

Two tiny pixel-space models on 8 frames of 8x8 moving squares: ``image`` (configs/tiny.yaml, the paper's
recipe), trained from scratch, and ``sketch`` (configs/sketch.yaml, the last-frame instruction turned
into a silhouette sketch), tuned from the image-tuned model (``init``) as the paper tunes PixelDance for
sketches. Trained from scratch instead, the sketch model had learned to follow neither instruction after
3000 steps (the recipe check's 26% ± 3% "closer" was only the image-tuned model being misled by the
sketch), while tuned from the image-tuned model it follows both after 1000. `benchmarks/recipe_check.py`
measures them; the notebooks train them, or reuse a finished run of the same config.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import yaml

from finetune.config import Config, load_config
from pdedit.errors import BadInput

logger = logging.getLogger(__name__)

__all__ = ["SHAPES_MODELS", "SHAPES_OVERRIDES", "SHAPES_STEPS", "SKETCH_STEPS", "shapes_config", "train_or_reuse"]

SHAPES_MODELS = {"image": "tiny", "sketch": "sketch"}  # model -> its config in finetune/configs
# Over the configs' defaults: a higher learning rate with EMA reaches clean samples in 3000 steps on a
# CPU; validation sheets only at the end (the measurements are the recipe check's).
SHAPES_STEPS = 3000  # training steps of the image-tuned model from scratch (the reference run's)
SKETCH_STEPS = 1000  # sketch-tuning steps from the image-tuned model
SHAPES_OVERRIDES = ("train.lr=0.001", "train.ema_decay=0.999", "train.validate_every=0", "train.validation_clips=2")


def shapes_config(kind: str, output_dir: str | Path, steps: int | None = None, extra: Sequence[str] = (),
                  init: str | Path | None = None) -> Config:
    """The config of the ``image`` or ``sketch`` moving-shapes model, trained for ``steps`` into ``output_dir``.

    ``steps`` defaults to SHAPES_STEPS (image) or SKETCH_STEPS (sketch); ``init`` is the model folder to start
    from (for ``sketch``, the image-tuned model's ``final``) [default: the tiny random model, from scratch].
    """
    if kind not in SHAPES_MODELS:
        raise BadInput(f"moving-shapes model {kind!r} is not one of {', '.join(SHAPES_MODELS)}")
    if steps is None:
        steps = SKETCH_STEPS if kind == "sketch" else SHAPES_STEPS
    start = [] if init is None else [f"model.init={init}"]
    return load_config(SHAPES_MODELS[kind], [*SHAPES_OVERRIDES, f"train.output_dir={output_dir}",
                                             f"train.max_steps={steps}", f"train.checkpoint_every={max(steps // 4, 1)}",
                                             *start, *extra])


# What may differ between a run folder's config and the one asked for, and still resume it: a longer (or
# shorter) run of the same recipe; the folder itself, since runs may be moved.
_RESUMABLE = ("train.max_steps", "train.checkpoint_every")


def _differences(config: Config, saved: Path, ignore: Sequence[str] = ()) -> list[str]:
    """``section.key`` names where the run folder's config.yaml differs from ``config`` (output_dir aside)."""
    old = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    new = config.to_dict()
    differ = []
    for section in sorted({*old, *new}):
        a, b = old.get(section) or {}, new.get(section) or {}
        differ += [f"{section}.{key}" for key in sorted({*a, *b}) if a.get(key) != b.get(key)]
    return [name for name in differ if name not in {"train.output_dir", *ignore}]


def train_or_reuse(config: Config) -> Path:
    """``output_dir/final`` when a finished run of this same config is there; else train (resuming).

    A run folder holding checkpoints of another recipe, model or data is refused (BadInput naming what
    differs) rather than resumed: resuming would pass its weights off as this config's.
    """
    from finetune.checkpoint import latest_checkpoint
    from finetune.train import train

    run = Path(config.train.output_dir)
    final, saved = run / "final", run / "config.yaml"
    if (final / "model_index.json").is_file() and saved.is_file() and not _differences(config, saved):
        logger.info("reusing %s", final)
        return final
    if saved.is_file() and latest_checkpoint(run) is not None:
        differ = _differences(config, saved, ignore=_RESUMABLE)
        if differ:
            raise BadInput(f"{run} holds a run of another config ({', '.join(differ)} differ): delete it or "
                           f"train into another folder")
    return train(config, resume="latest")
