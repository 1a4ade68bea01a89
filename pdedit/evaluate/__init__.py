"""Measuring edits and models: `pdedit eval edit` (weight-free), `pdedit eval model` (FVD, FID, IS,
CLIPSIM) and `pdedit eval tau` (first- and last-frame adherence against tau).

- `edit`: edited clips against their source (keyframe fidelity, stability along the source's flow,
  motion kept, per-frame oracle), over the DIS flow of `flow`.
- `model`: reads or generates clips and computes the paper's metrics with feature networks read from
  local files by `weights`: `i3d` (FVD), `inception` (FID), `c3d` (IS), `clip` (CLIPSIM); `scores` holds
  the arithmetic (Fréchet distance, Inception Score).
- `tau`: how a PixelDance model's clips follow their first- and last-frame instructions as tau
  varies (the paper's tau study).

Torch is imported only by the model and tau sides.
"""
