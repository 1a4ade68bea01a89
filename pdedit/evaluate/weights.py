"""Reading an extractor's weights from a local file or folder: safetensors, or a plain state dict.

Nothing is downloaded. A pickle is read with ``torch.load(weights_only=True)``, which refuses anything
but tensors and plain containers, so a checkpoint that carries code is an error, never executed.
"""

from __future__ import annotations

import os
from pathlib import Path

from pdedit.errors import MissingModel

__all__ = ["WEIGHT_SUFFIXES", "read_state_dict", "load_strict"]

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


def _weight_file(path: Path, what: str, hint: str) -> Path:
    """The one weight file at ``path`` (a file, or a folder holding exactly one)."""
    if not path.exists():
        raise MissingModel(f"{what}: {path} does not exist; {hint}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        preferred = [p for p in files if p.suffix == ".safetensors"] or files
        if len(preferred) != 1:
            found = ", ".join(p.name for p in files) or "none"
            raise MissingModel(f"{what}: folder {path} should hold one weight file ({'/'.join(WEIGHT_SUFFIXES)}), "
                               f"found {found}; give the file itself")
        return preferred[0]
    return path


def read_state_dict(path: str | os.PathLike | None, what: str, option: str, hint: str) -> dict:
    """Tensors by name from a local weight file; MissingModel naming the model, the option and the source.

    Args:
        path: a .safetensors file, a state dict saved with torch.save, or a folder holding one of them.
        what: the model, e.g. "I3D (Kinetics-400) for FVD".
        option: the command-line option that gives it, e.g. "--i3d FILE".
        hint: where people usually get such weights.
    """
    import torch

    if path is None:
        raise MissingModel(f"{what} needs its weights: pass {option}; {hint}")
    file = _weight_file(Path(path), what, hint)
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(file))
        except Exception as err:  # safetensors raises its own error types for a damaged header
            raise MissingModel(f"{what}: {file} is not a readable safetensors file ({err}); {hint}") from None
    else:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # UnpicklingError for code-carrying pickles, RuntimeError for damaged files
            raise MissingModel(f"{what}: {file} is not a plain state dict that loads with weights_only=True "
                               f"({type(err).__name__}); convert it to safetensors or a state dict; {hint}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # the layout of many training checkpoints
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MissingModel(f"{what}: {file} does not hold a state dict of tensors; {hint}")
    # Weights saved from nn.DataParallel carry a "module." prefix on every name.
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_strict(model, state: dict, what: str, hint: str):
    """Load ``state`` into ``model`` exactly (every name, every shape); MissingModel saying what differs."""
    import torch

    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(v)} {name} (e.g. {v[0]})" for name, v in
                 (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong)) if v]
        raise MissingModel(f"{what}: the weights do not fit the architecture: {'; '.join(parts)} tensors; {hint}")
    with torch.no_grad():
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model.eval()
