"""Engines: one interface, ``Engine.render(EditJob) -> frames``, over the ways pdedit makes a clip.

- ``propagate``: no weights; carries the edited keyframes along the source video's optical flow.
  The default when no model is given, so ``pdedit edit`` works on a fresh machine.
- ``pixeldance``: the PixelDance pipeline (arXiv 2311.10982) from a local diffusers folder.
- ``wan``, ``ltx``: the open first/last-frame models (Wan2.1 FLF2V, LTX-Video) under the same tau schedule.

Each engine's capabilities are declared once, in its ``EngineSpec`` (``pdedit.engines.specs``): the model
folders it runs, whether it takes middle keyframes, its default clip length, fps, guidance and steps, the
options its constructor accepts and how to get a model for it. Nothing outside ``pdedit.engines`` names an engine:
the editor, the generation step, the CLI and the app ask the spec. The engine classes are imported only
when one is built, so choosing one (and refusing bad input) costs no torch import.

``choose(name, model)`` resolves "auto" and reads the model folder once; ``EngineChoice.job`` fills in the
engine's defaults and ``EngineChoice.build`` makes the engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdedit.engines.job import EditJob, Engine, refuse_keyframes
from pdedit.engines.specs import ENGINES, EngineSpec, engine_for_class, generative_engines
from pdedit.errors import BadInput, MissingModel
from pdedit.model_folder import how_to_make, read_model_index

__all__ = ["EditJob", "Engine", "EngineSpec", "EngineChoice", "ENGINES", "choose", "choose_engine", "get_engine",
           "build_engine", "refuse_keyframes", "generative_engines"]


@dataclass(frozen=True)
class EngineChoice:
    """An engine chosen for a run: its spec, the model folder (read once) and why it was chosen."""

    spec: EngineSpec
    model: Path | None
    why: str
    index: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        """The engine's name."""
        return self.spec.name

    @property
    def frames(self) -> int | None:
        """Default clip length: the model folder's ``num_frames``, else the engine's (None: the source's)."""
        value = (self.index or {}).get("num_frames")
        return value if isinstance(value, int) and value >= 2 else self.spec.frames

    @property
    def fps(self) -> float | None:
        """Default frame rate of a generated clip: the model folder's ``fps``, else the engine's."""
        value = (self.index or {}).get("fps")
        return float(value) if isinstance(value, (int, float)) and value > 0 else self.spec.fps

    def check_keyframes(self, keyframes: Mapping[int, Any] | None) -> None:
        """Refuse middle keyframes (Unsupported) before any heavy work when the engine takes none."""
        if not self.spec.takes_keyframes:
            refuse_keyframes(self.name, keyframes or {})

    def job(self, **fields: Any) -> EditJob:
        """An EditJob with this engine's defaults for the settings left None (guidance, steps, frames, fps)."""
        defaults = {"guidance": self.spec.guidance, "steps": self.spec.steps, "num_frames": self.frames,
                    "fps": self.fps}
        for key, value in defaults.items():
            if fields.get(key) is None:
                fields[key] = value
        # None elsewhere means "not given": the EditJob default applies (source, last and guidance may be None).
        return EditJob(**{k: v for k, v in fields.items() if v is not None or k in ("source", "last", "guidance")})

    def build(self, **options: Any) -> Engine:
        """Build the engine over the chosen model folder."""
        return build_engine(self.spec, self.model, **options)


def build_engine(spec: EngineSpec, model: str | Path | None = None, **options: Any) -> Engine:
    """Import and construct the engine of ``spec`` (over ``model`` when it runs one); None options are left out."""
    module, cls = spec.target.split(":")
    engine_cls = getattr(importlib.import_module(module), cls)
    given = spec.check_options(options)
    return engine_cls(model, **given) if spec.needs_model else engine_cls(**given)


def choose(name: str = "auto", model: str | Path | None = None) -> EngineChoice:
    """Resolve an engine name ("auto" included) against a model folder, reading the folder once.

    auto: the engine whose model class the folder's model_index.json names, or propagate without a model.
    """
    if name != "auto" and name not in ENGINES:
        raise BadInput(f"unknown engine {name!r}: choose one of auto, {', '.join(ENGINES)}")
    path = Path(model).expanduser() if model is not None else None
    if name == "auto" and path is None:
        return EngineChoice(ENGINES["propagate"], None, "no --model given: using the weight-free propagate engine")
    if name != "auto" and not ENGINES[name].needs_model:
        why = f"--engine {name}: {ENGINES[name].summary}"
        return EngineChoice(ENGINES[name], None, why + (" (the --model folder is not used)" if path else ""))
    if path is None:
        spec = ENGINES[name]
        raise BadInput(f"--engine {name} needs --model DIR, a model folder for it; {spec.hint('DIR')}")
    if name == "auto":
        index = read_model_index(path, how_to_make(str(path)))
        spec = engine_for_class(index["_class_name"])
        for convertible in (s for s in ENGINES.values() if spec is None and index["_class_name"] in
                            dict(s.converts_from)):
            convertible.check_folder(path, index)  # raises: says how to convert it
        if spec is None:
            classes = [c for s in ENGINES.values() for c in s.model_classes]
            raise MissingModel(f"{path} holds a {index['_class_name']}, which no pdedit engine runs "
                               f"(model_index.json should name one of {', '.join(classes)}); {how_to_make(str(path))}")
        index = spec.check_folder(path, index)  # its components
        return EngineChoice(spec, path, f"--model {path} is a {index['_class_name']}: using the {spec.name} engine",
                            index)
    spec = ENGINES[name]
    return EngineChoice(spec, path, f"--engine {name} with the model in {path}", spec.check_folder(path))


def choose_engine(name: str = "auto", model: str | Path | None = None) -> tuple[str, str]:
    """Resolve an engine name ("auto" included) against a model folder; returns (engine, why)."""
    choice = choose(name, model)
    return choice.name, choice.why


def get_engine(name: str = "auto", model: str | Path | None = None, **options: Any) -> Engine:
    """Build the engine ``name`` ("auto": from the model folder's model_index.json, or propagate without one)."""
    return choose(name, model).build(**options)
