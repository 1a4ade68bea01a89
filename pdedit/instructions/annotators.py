"""controlnet-aux detectors loaded from a local folder: lazy, quiet, never downloading.

Importing controlnet_aux takes seconds and prints a dozen warnings, so it happens here, on first
use, with warnings silenced. Each detector's ``from_pretrained(folder)`` reads fixed file names;
they are listed below so a missing file is a MissingModel error naming every file expected. A
detector is only ever given an existing folder holding those files, so it never calls the hub.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pdedit.errors import MissingModel

__all__ = ["ANNOTATORS", "Annotator", "load_annotator", "run_annotator", "import_quietly"]

logger = logging.getLogger(__name__)

HUB_REPO = "lllyasviel/Annotators"


@dataclass(frozen=True)
class Annotator:
    """A controlnet-aux detector: where its class lives and the files its from_pretrained reads."""

    module: str
    cls: str
    files: tuple[str, ...]


# name -> detector; the file names are those the detectors' from_pretrained read from a folder.
ANNOTATORS = {
    "hed": Annotator("controlnet_aux.hed", "HEDdetector", ("ControlNetHED.pth",)),
    "pidinet": Annotator("controlnet_aux.pidi", "PidiNetDetector", ("table5_pidinet.pth",)),
    "lineart": Annotator("controlnet_aux.lineart", "LineartDetector", ("sk_model.pth", "sk_model2.pth")),
    "openpose": Annotator("controlnet_aux.open_pose", "OpenposeDetector",
                          ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth")),
    "midas": Annotator("controlnet_aux.midas", "MidasDetector", ("dpt_hybrid-midas-501f0c75.pt",)),
}


def import_quietly(module: str):
    """Import a module of controlnet_aux with its import-time warnings and prints silenced."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return importlib.import_module(module)


def _missing_message(name: str, folder: Path | None, missing: list[str]) -> str:
    """A message naming the folder, the files it must hold and where they come from."""
    files = ", ".join(ANNOTATORS[name].files)
    where = f"from the hub repo {HUB_REPO} (e.g. `huggingface-cli download {HUB_REPO} {files} --local-dir DIR`)"
    if folder is None:
        return f"{name} needs its weights in a local folder: pass --annotator-dir DIR holding {files}, {where}"
    return f"--annotator-dir {folder} lacks {', '.join(missing)} needed by {name} (it needs {files}); get them {where}"


@functools.lru_cache(maxsize=8)
def _load(name: str, folder: str):
    """Build the detector from the folder once per process."""
    spec = ANNOTATORS[name]
    detector_cls = getattr(import_quietly(spec.module), spec.cls)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector = detector_cls.from_pretrained(folder)
    except Exception as err:  # a torn or foreign file surfaces as many kinds of error from torch
        raise MissingModel(f"could not load {name} weights from {folder} ({type(err).__name__}: {err}); "
                           f"replace the files with those of {HUB_REPO}") from err
    logger.info("loaded %s from %s", name, folder)
    return detector


def load_annotator(name: str, annotator_dir: str | Path | None):
    """The controlnet-aux detector ``name`` loaded from ``annotator_dir`` (MissingModel if files lack)."""
    if annotator_dir is None:
        raise MissingModel(_missing_message(name, None, []))
    folder = Path(annotator_dir)
    if not folder.is_dir():
        raise MissingModel(f"--annotator-dir {folder} is not a folder; " + _missing_message(name, None, []))
    missing = [f for f in ANNOTATORS[name].files if not (folder / f).is_file()]
    if missing:
        raise MissingModel(_missing_message(name, folder, missing))
    return _load(name, str(folder.resolve()))


def run_annotator(detector, frame: np.ndarray, **kwargs) -> np.ndarray:
    """Run a detector at the frame's own resolution (at most 512) and return RGB uint8 at its size."""
    h, w = frame.shape[:2]
    resolution = min(512, h, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = detector(frame, detect_resolution=resolution, image_resolution=resolution,
                       output_type="np", **kwargs)
    out = np.asarray(out)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    if out.shape[:2] != (h, w):
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out.astype(np.uint8)
