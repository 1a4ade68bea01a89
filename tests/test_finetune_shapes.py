"""finetune.shapes: the moving-shapes models of the recipe check and the notebooks, trained once, then reused."""

from __future__ import annotations

import pytest

import finetune.train
from finetune.shapes import SHAPES_STEPS, SKETCH_STEPS, shapes_config, train_or_reuse
from pdedit.errors import BadInput

FAST = ["train.batch_size=2", "train.tensorboard=false", "train.validation_clips=0"]


def test_sketch_model_is_tuned_from_the_image_model_on_silhouette_sketches():
    image, sketch = shapes_config("image", "runs/a"), shapes_config("sketch", "runs/b", init="runs/a/final")
    assert sketch.recipe.last_frame_transform == "sketch" and sketch.recipe.transform_method == "silhouette"
    assert image.recipe.last_frame_transform == "none"
    assert image.model.init == "tiny" and sketch.model.init == "runs/a/final"  # image from scratch, sketch from it
    assert (image.train.max_steps, sketch.train.max_steps) == (SHAPES_STEPS, SKETCH_STEPS)
    assert image.recipe.image_noise_timestep == sketch.recipe.image_noise_timestep == 100  # the reference's noise
    assert image.train.lr == sketch.train.lr == 1e-3 and image.train.ema_decay == sketch.train.ema_decay == 0.999


def test_train_or_reuse_trains_once_then_reuses_only_the_same_config(tmp_path, monkeypatch, single_thread_torch):
    config = shapes_config("image", tmp_path / "image", steps=2, extra=FAST)
    final = train_or_reuse(config)
    assert (final / "model_index.json").is_file()
    calls = []
    monkeypatch.setattr(finetune.train, "train", lambda cfg, resume=None: calls.append((cfg, resume)) or final)
    again = shapes_config("image", tmp_path / "image", steps=2, extra=FAST)
    assert train_or_reuse(again) == final and calls == []  # same run: nothing trained
    longer = shapes_config("image", tmp_path / "image", steps=3, extra=FAST)
    train_or_reuse(longer)
    assert [(c.train.max_steps, r) for c, r in calls] == [(3, "latest")]  # another config trains, resuming
    # Another recipe in the same folder is refused, not resumed from these checkpoints.
    noisier = shapes_config("image", tmp_path / "image", steps=3, extra=[*FAST, "recipe.image_noise_timestep=50"])
    with pytest.raises(BadInput, match="recipe.image_noise_timestep"):
        train_or_reuse(noisier)
    assert len(calls) == 1
