"""Depth instructions: a MiDaS depth map (near = bright), from a frame, through controlnet-aux."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pdedit.errors import BadInput
from pdedit.instructions.annotators import load_annotator, run_annotator

__all__ = ["DEPTH_METHODS", "to_depth"]

DEPTH_METHODS = ("midas",)


def to_depth(frame: np.ndarray, *, method: str | None = None, annotator_dir: str | Path | None = None,
             **_: object) -> np.ndarray:
    """Grey depth map (H, W, 3) from MiDaS DPT-Hybrid weights in ``annotator_dir``."""
    method = method or "midas"
    if method not in DEPTH_METHODS:
        raise BadInput(f"unknown depth method {method!r}; use one of {', '.join(DEPTH_METHODS)}")
    out = run_annotator(load_annotator("midas", annotator_dir), frame)
    return np.ascontiguousarray(out)
