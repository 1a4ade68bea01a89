"""Model folders on disk: the one reader of diffusers folders, local-or-hub, quiet loading, atomic saving.

A model folder is a diffusers folder: ``model_index.json`` (its ``_class_name`` says what it holds) and
one subfolder per component, weights in safetensors. The engine registry (which engine runs a folder),
the PixelDance loader and ``pdedit model init`` all read and write folders through this module; it
imports none of them, so no layer has to import another to learn what a folder holds.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pdedit.errors import BadInput, MissingModel

__all__ = ["how_to_make", "read_model_index", "missing_components", "hub_or_local", "quiet_loading",
           "replace_folder", "save_folder"]


def how_to_make(folder: str | Path = "DIR") -> str:
    """How to get a PixelDance model folder (they are made by pdedit itself): ends every missing-model message."""
    return (f"make one with `pdedit model init --tiny {folder}` (random weights, for trying things out) or "
            f"`pdedit model init --from-t2v SRC {folder}` (from a text-to-video model, then fine-tune it)")


def read_model_index(folder: str | Path, hint: str) -> dict[str, Any]:
    """A diffusers folder's model_index.json, with a str ``_class_name``; MissingModel ending in ``hint`` otherwise."""
    path = Path(folder).expanduser()
    if not path.exists():
        raise MissingModel(f"model folder {path} does not exist: {hint}")
    if not path.is_dir():
        raise MissingModel(f"model {path} is a file, expected a diffusers folder: {hint}")
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise MissingModel(f"{path} has no model_index.json, so it is not a diffusers model folder: {hint}")
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise MissingModel(f"{index_file} is not valid JSON ({err}): {hint}") from err
    if not isinstance(index, dict) or not isinstance(index.get("_class_name"), str):
        raise MissingModel(f"{index_file} has no _class_name, so the model kind is unknown: {hint}")
    return index


def missing_components(folder: str | Path, index: dict[str, Any], components: Sequence[str]) -> list[str]:
    """The components named in ``components`` that the folder's index or its subfolders lack."""
    path = Path(folder).expanduser()
    return [c for c in components if c not in index or not (path / c).is_dir()]


def hub_or_local(model: str | Path) -> tuple[str, bool]:
    """(source, local_files_only) for ``from_pretrained``: a folder when one exists, else a hub id if allowed.

    A hub id ("owner/name") is tried only when no such folder exists and HF_HUB_OFFLINE is unset; everything
    else is a local path, so a typo is a missing-folder error, never a download.
    """
    from huggingface_hub import constants

    path = Path(model).expanduser()
    text = str(model)
    looks_like_hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if path.exists() or constants.HF_HUB_OFFLINE or not looks_like_hub_id:
        return str(path), True
    return text, False


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide diffusers' and transformers' progress bars while loading (or saving) a model: a library call stays quiet."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    restore = [lib for lib in (diffusers_logging, transformers_logging) if lib.is_progress_bar_enabled()]
    for lib in restore:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib in restore:
            lib.enable_progress_bar()


def replace_folder(tmp: Path, final: Path) -> Path:
    """Move the finished folder ``tmp`` to ``final``, replacing what is there, never leaving ``final`` half-written."""
    old = tmp.with_name(tmp.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.is_dir():
        shutil.rmtree(old)
    elif old.exists():
        old.unlink()
    return final


def save_folder(write: Callable[[Path], Any], output: str | Path, force: bool = False) -> Path:
    """Write a folder atomically: ``write(tmp)`` into a temporary folder beside ``output``, then rename it there.

    BadInput when ``output`` exists (without ``force``) or its parent folder is missing, before anything is written.
    """
    out = Path(output)
    if out.exists() and not force:
        raise BadInput(f"{out} already exists: pass --force to replace it, or choose another folder")
    if not out.parent.resolve().is_dir():
        raise BadInput(f"cannot write {out}: folder {out.parent} does not exist; create it first")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with quiet_loading():  # save_pretrained's "Writing model shards" bars
            write(tmp)
        return replace_folder(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
