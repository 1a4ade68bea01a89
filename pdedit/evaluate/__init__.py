"""Measuring edits and models: `pdedit eval edit` (weight-free) and `pdedit eval model` (FVD, FID, IS, CLIPSIM).

`pdedit.evaluate.edit` scores edited clips against their source; `pdedit.evaluate.model` reads or
generates clips and computes the paper's metrics with feature extractors loaded from local files
(`pdedit.evaluate.extractors`); `pdedit.evaluate.scores` holds the arithmetic (Fréchet distance,
Inception Score). Torch is imported only by the model side.
"""
