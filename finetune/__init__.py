"""finetune: train PixelDance models with the paper's recipe (arXiv 2311.10982, §3.2).

``python -m finetune --config tiny.yaml`` (or ``accelerate launch -m finetune ...``); in Python,
``from finetune.train import train; train(load_config("tiny"))``. The loop is in ``finetune.train``,
imported on demand so that reading data or the recipe does not load accelerate. Latents cached once:
``python -m finetune.prepare`` writes shards (``finetune.shards``) that ``data.shards=DIR`` trains from.
"""

from finetune.config import Config, load_config
from finetune.data import ImageFolder, MovingShapes, VideoFolder, read_manifest
from finetune.recipe import Recipe, diffusion_loss, draw_sample

__all__ = [
    "Config",
    "load_config",
    "MovingShapes",
    "VideoFolder",
    "ImageFolder",
    "read_manifest",
    "Recipe",
    "draw_sample",
    "diffusion_loss",
]
