"""Each engine's capabilities, declared once and known without importing the engine (no torch).

An ``EngineSpec`` says which model folders an engine runs (and how to check one), whether it takes middle
keyframes, its default clip length, fps, guidance and steps, the options its constructor accepts and how to
get a model for it. The registry (``pdedit.engines``) builds engines from these; the pixeldance loader
checks its folders with them. This module imports no engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdedit.errors import BadInput, MissingModel
from pdedit.model_folder import how_to_make, missing_components, read_model_index

__all__ = ["EngineSpec", "ENGINES", "engine_for_class", "generative_engines"]

# Hub ids of the open models (pdedit never downloads: the hint says how to).
_HUB_IDS = {"wan": "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers", "ltx": "Lightricks/LTX-Video"}


def _download_hint(engine: str) -> Callable[[str], str]:
    """The how-to-get-it hint of an open-model engine: the hub id and the download command."""
    hub_id = _HUB_IDS[engine]
    return lambda folder: (f"download it once with `hf download {hub_id} --local-dir {folder}`, "
                           f"then pass --model {folder}")


@dataclass(frozen=True)
class EngineSpec:
    """What an engine can do and needs, known without importing it.

    Args:
        name: the engine's name (``--engine NAME``).
        summary: one line for help texts.
        target: "module:Class" of the engine, imported when one is built.
        model_classes: the model_index.json ``_class_name`` values it runs; empty: it takes no model.
        components: subfolders a model folder must have (checked before loading).
        takes_keyframes: whether it takes edited keyframes between the first and the last frame.
        frames: default clip length when the job does not say (the model folder's ``num_frames`` wins);
            None: the source clip's own frames (propagate).
        fps: default frame rate of generated clips (the model folder's ``fps`` wins).
        guidance, steps: its default text guidance and denoising steps.
        options: keyword options its constructor accepts (e.g. "offload", "scheduler").
        hint: how to get a model folder for it, given the folder the user named.
        converts_from: (model class, command making a folder for this engine from one, with ``{folder}``).
    """

    name: str
    summary: str
    target: str
    model_classes: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    takes_keyframes: bool = False
    frames: int | None = None
    fps: float | None = None
    guidance: float | None = None
    steps: int | None = None
    options: tuple[str, ...] = ()
    hint: Callable[[str], str] = how_to_make
    converts_from: tuple[tuple[str, str], ...] = ()

    @property
    def needs_model(self) -> bool:
        """Whether the engine runs a model folder (a generative engine)."""
        return bool(self.model_classes)

    def check_folder(self, model: str | Path, index: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The folder's model_index.json (``index`` when already read) when it holds a model this engine runs;
        MissingModel saying what to do otherwise."""
        path = Path(model).expanduser()
        index = dict(index) if index is not None else read_model_index(path, self.hint(str(path)))
        kind = index["_class_name"]
        if kind not in self.model_classes:
            owner = engine_for_class(kind)
            if owner is not None:
                raise MissingModel(f"{path} holds a {kind}, not a model for the {self.name} engine: "
                                   f"use --engine {owner.name} (or auto)")
            convert = dict(self.converts_from).get(kind)
            if convert is not None:
                raise MissingModel(f"{path} holds a {kind} model, not a {self.model_classes[0]}: convert it with "
                                   f"`{convert.format(folder=path)}`")
            raise MissingModel(f"{path} holds a {kind}, which the {self.name} engine does not run "
                               f"(model_index.json should name one of {', '.join(self.model_classes)}): "
                               f"{self.hint(str(path))}")
        missing = missing_components(path, index, self.components)
        if missing:
            raise MissingModel(f"{path} lacks the component folder(s) {', '.join(missing)}: {self.hint(str(path))}")
        return index

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options that are set (not None); BadInput naming one this engine does not take."""
        given = {k: v for k, v in options.items() if v is not None}
        for key, value in given.items():
            if key not in self.options:
                takers = [s.name for s in ENGINES.values() if key in s.options]
                raise BadInput(f"--{key} {value} applies to the {' and '.join(takers) or 'no'} engine(s), "
                               f"not {self.name}: drop it")
        return given


ENGINES: dict[str, EngineSpec] = {
    "propagate": EngineSpec(
        name="propagate", summary="weight-free: carries the edits along the source video's optical flow",
        target="pdedit.engines.propagate:PropagateEngine", takes_keyframes=True,
    ),
    "pixeldance": EngineSpec(
        name="pixeldance", summary="PixelDance (arXiv 2311.10982) from a local model folder",
        target="pdedit.engines.pixeldance:PixelDanceEngine", model_classes=("PixelDancePipeline",),
        components=("vae", "text_encoder", "tokenizer", "unet", "scheduler"),
        frames=16, fps=8.0, guidance=7.5, steps=25, options=("device", "dtype", "scheduler"),
        converts_from=(("TextToVideoSDPipeline", "pdedit model init --from-t2v {folder} OUT"),),
    ),
    "wan": EngineSpec(
        name="wan", summary="Wan2.1 FLF2V (first/last-frame to video) under the tau schedule",
        target="pdedit.engines.wan:WanEngine", model_classes=("WanImageToVideoPipeline",),
        frames=81, fps=16.0, guidance=5.0, steps=25, options=("device", "dtype", "offload", "vae_tiling"),
        hint=_download_hint("wan"),
    ),
    "ltx": EngineSpec(
        name="ltx", summary="LTX-Video keyframes under the tau schedule",
        target="pdedit.engines.ltx:LTXEngine",
        model_classes=("LTXConditionPipeline", "LTXPipeline", "LTXImageToVideoPipeline"),
        takes_keyframes=True, frames=121, fps=25.0, guidance=3.0, steps=25,
        options=("device", "dtype", "offload", "vae_tiling"),
        hint=_download_hint("ltx"),
    ),
}


def engine_for_class(kind: str) -> EngineSpec | None:
    """The engine that runs model folders whose model_index.json names ``kind``, if any."""
    return next((s for s in ENGINES.values() if kind in s.model_classes), None)


def generative_engines() -> list[str]:
    """The engines that run a model folder (what `generate`, `story` and the app's Generate tab offer)."""
    return [name for name, spec in ENGINES.items() if spec.needs_model]
