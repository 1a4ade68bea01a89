"""Training checkpoints: written atomically by every rank together, found again, restored.

``checkpoints/step-NNNNNNN/`` holds accelerate's state (model, optimizer, LR schedule, each rank's random
state), the EMA weights when EMA is on, and ``trainer_state.json``, written last: a folder without it is
an interrupted write and is never resumed from. Every rank writes into one temporary folder; the main rank
renames it into place only after all of them have finished (``wait_for_everyone``), so a checkpoint never
lacks a rank's state. ``final/`` is the trained pipeline folder, which ``pdedit generate`` loads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pdedit.errors import BadInput
from pdedit.model_folder import replace_folder, save_folder

__all__ = ["CHECKPOINT_PREFIX", "latest_checkpoint", "save_checkpoint", "load_checkpoint", "resolve_resume",
           "save_final"]

CHECKPOINT_PREFIX = "step-"


def _step_of(folder: Path) -> int:
    """The step number in a checkpoint folder's name."""
    return int(folder.name[len(CHECKPOINT_PREFIX):])


def _complete(root: Path) -> list[Path]:
    """The complete checkpoint folders under ``root``, oldest first (temporary and interrupted ones ignored)."""
    done = [p for p in root.glob(f"{CHECKPOINT_PREFIX}*") if (p / "trainer_state.json").is_file()]
    return sorted(done, key=_step_of)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``output_dir/checkpoints`` (temp folders ignored)."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return None
    done = _complete(root)
    return done[-1] if done else None


def save_checkpoint(accelerator, output_dir: Path, step: int, ema, keep: int) -> Path:
    """Write the full training state to checkpoints/step-N atomically; every rank must call it."""
    root = output_dir / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step:07d}"
    tmp = root / f".tmp-{CHECKPOINT_PREFIX}{step:07d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)  # each rank writes its own random state here
    # Every rank's files must be in tmp before the main rank renames it.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if ema is not None:
            from safetensors.torch import save_file

            save_file({f"shadow.{i}": p.detach().cpu().contiguous() for i, p in enumerate(ema.shadow_params)},
                      str(tmp / "ema.safetensors"))
            (tmp / "ema.json").write_text(json.dumps({"optimization_step": ema.optimization_step, "decay": ema.decay}))
        # trainer_state.json is written last: a folder without it is an interrupted write.
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step}), encoding="utf-8")
        replace_folder(tmp, final)
        for old in _complete(root)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, folder: Path, ema) -> int:
    """Restore model, optimizer, LR schedule (and EMA) from ``folder``; returns its step."""
    accelerator.load_state(str(folder))
    if ema is not None and (folder / "ema.safetensors").is_file():
        from safetensors.torch import load_file

        shadow = load_file(str(folder / "ema.safetensors"))
        for i, p in enumerate(ema.shadow_params):
            p.data.copy_(shadow[f"shadow.{i}"].to(p.device))
        ema.optimization_step = json.loads((folder / "ema.json").read_text())["optimization_step"]
    return int(json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))["step"])


def resolve_resume(resume: str | None, output_dir: Path) -> Path | None:
    """``latest`` -> the newest checkpoint (None when there is none yet); a path -> that checkpoint."""
    if resume is None:
        return None
    if resume == "latest":
        return latest_checkpoint(output_dir)
    path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise BadInput(f"--resume {resume} is not a checkpoint folder (no trainer_state.json): "
                       f"pass --resume latest or a folder under {output_dir / 'checkpoints'}")
    return path


def save_final(pipe, unet, output_dir: Path) -> Path:
    """Save the trained pipeline to ``output_dir/final`` atomically (temp folder, then rename)."""
    pipe.unet = unet
    return save_folder(lambda tmp: pipe.save_pretrained(str(tmp), safe_serialization=True), output_dir / "final",
                       force=True)
