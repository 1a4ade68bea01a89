"""What the wan and ltx engines share: open first/last-frame video models run under pdedit's job contract.

- Model folders: a diffusers folder on disk (``model_index.json`` + component folders). Its
  ``_class_name`` says which engine runs it; the engine registry (``pdedit.engines.specs``) checks the
  folder before an engine is built and holds the hub ids to download. Nothing is fetched: a missing folder
  or one of another kind is a MissingModel error that says what to do.
- Fitting a job to the model's grid: Wan wants ``4k+1`` frames and sizes in multiples of 16, LTX ``8k+1``
  frames and multiples of 32. The model renders the smallest fitting clip that covers the job (over the
  same time span); the job's frames are taken from it at evenly spaced positions (first and last exactly,
  keyframes at their mapped positions) and resized to the job size.
- Memory: bf16 on CUDA, VAE tiling/slicing, ``offload`` in none | model | sequential | auto, and a VRAM
  estimate checked against the free device memory before a run (Unsupported instead of a CUDA OOM).
- The tau schedule: ``StepTracker`` follows the pipeline's denoising steps through its own
  ``callback_on_step_end`` hook, so a transformer hook knows which step it is in and whether the
  last-frame condition is still present (PixelDance §3.2: the last frame guides only the first tau of
  the steps; the schedule is ``pdedit.conditioning.last_frame_schedule``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pdedit.errors import BadInput, MissingModel, Unsupported

logger = logging.getLogger(__name__)

__all__ = [
    "OFFLOAD_MODES",
    "load_open_pipeline",
    "fit_num_frames",
    "frame_positions",
    "fit_size",
    "module_bytes",
    "estimate_vram",
    "check_vram",
    "place_pipeline",
    "StepTracker",
    "patched",
    "frames_to_pil",
    "RenderPlan",
    "OpenModelEngine",
]

OFFLOAD_MODES = ("auto", "none", "model", "sequential")

# Headroom over the estimate: CUDA context, allocator fragmentation, kernels' workspaces.
_VRAM_SLACK_BYTES = 1 << 30
_VRAM_MARGIN = 1.15


def load_open_pipeline(pipeline_cls: type, folder: Path, engine: str,
                       dtype: torch.dtype | dict[str, torch.dtype]) -> Any:
    """``pipeline_cls.from_pretrained(folder)`` from local files only; load failures become MissingModel."""
    from diffusers.pipelines import pipeline_utils

    from pdedit.engines.specs import ENGINES
    from pdedit.model_folder import quiet_loading

    # diffusers renamed `torch_dtype` to `dtype` (the old name warns); older releases know only the old one.
    dtype_kw = "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"
    try:
        with quiet_loading():
            return pipeline_cls.from_pretrained(str(folder), local_files_only=True, **{dtype_kw: dtype})
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as err:
        raise MissingModel(f"cannot load the {engine} model in {folder} ({type(err).__name__}: {err}); "
                           f"{ENGINES[engine].hint(str(folder))}") from err


def fit_num_frames(num_frames: int, temporal_factor: int) -> int:
    """The smallest ``k * temporal_factor + 1 >= num_frames``: the clip length the model can render."""
    if num_frames < 2:
        raise BadInput(f"--frames {num_frames}: a clip needs at least 2 frames")
    return math.ceil((num_frames - 1) / temporal_factor) * temporal_factor + 1


def frame_positions(num_frames: int, model_frames: int) -> list[int]:
    """For each of the job's frames, the model frame shown there (evenly spaced; first and last exact)."""
    from pdedit.video import even_indices

    return list(even_indices(0, model_frames - 1, num_frames))


def fit_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """``(w, h)`` rounded to the nearest multiples of ``multiple``, halves up (at least one multiple each)."""
    w, h = size
    return tuple(max(multiple, int(math.floor(x / multiple + 0.5)) * multiple) for x in (w, h))


def frames_to_pil(frames: Sequence[np.ndarray]) -> list:
    """PIL images from uint8 (H, W, 3) frames (the image type diffusers' processors take)."""
    from PIL import Image

    return [Image.fromarray(np.ascontiguousarray(f)) for f in frames]


def module_bytes(module: nn.Module, recurse: bool = True) -> int:
    """Bytes held by a module's parameters and buffers."""
    tensors = list(module.parameters(recurse=recurse)) + list(module.buffers(recurse=recurse))
    return sum(t.numel() * t.element_size() for t in tensors)


def estimate_vram(components: dict[str, nn.Module], activation_bytes: int, offload: str) -> int:
    """Peak device memory (bytes) of one run: resident weights for the offload mode + activations + slack.

    none: every component resident; model: one component at a time (enable_model_cpu_offload), so the
    largest one; sequential: one submodule at a time, so the largest set of direct parameters.
    """
    sizes = {name: module_bytes(m) for name, m in components.items()}
    if offload == "none":
        weights = sum(sizes.values())
    elif offload == "model":
        weights = max(sizes.values(), default=0)
    elif offload == "sequential":
        weights = max((module_bytes(sub, recurse=False) for m in components.values() for sub in m.modules()),
                      default=0)
    else:
        raise ValueError(f"offload must be one of none, model, sequential; got {offload!r}")
    return int((weights + activation_bytes) * _VRAM_MARGIN) + _VRAM_SLACK_BYTES


def _gib(n: int) -> str:
    """Bytes as GiB with one decimal."""
    return f"{n / 2**30:.1f} GiB"


def check_vram(estimates: dict[str, int], free_bytes: int, offload: str, what: str) -> str:
    """The offload mode to use: ``offload`` if its estimate fits ``free_bytes`` (auto: the fastest that fits).

    Raises Unsupported naming the estimate, the free memory and what to change.
    """
    if offload == "auto":
        for mode in ("none", "model", "sequential"):
            if estimates[mode] <= free_bytes:
                return mode
        offload = "sequential"
    if estimates[offload] <= free_bytes:
        return offload
    cheaper = [m for m in ("model", "sequential") if estimates[m] <= free_bytes]
    fix = (f"pass --offload {cheaper[0]}" if cheaper
           else "render fewer --frames or a smaller --size")
    raise Unsupported(f"{what} needs about {_gib(estimates[offload])} of GPU memory with --offload {offload}, "
                      f"but the GPU has {_gib(free_bytes)} free: {fix}")


def place_pipeline(pipe: Any, device: torch.device, offload: str) -> None:
    """Put the pipeline on ``device`` with the chosen offload mode (CPU: stays where it is)."""
    if device.type == "cpu":
        pipe.to(device)
    elif offload == "none":
        pipe.to(device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        raise BadInput(f"--offload {offload}: choose one of {', '.join(OFFLOAD_MODES)}")


class StepTracker:
    """Follows the pipeline's denoising steps through ``callback_on_step_end``.

    ``step`` is the 0-based index of the step being denoised: 0 before the first callback, ``i + 1`` after
    step ``i``. A transformer hook asks ``present(schedule)`` whether a condition is given in this step.
    """

    def __init__(self) -> None:
        self.step = 0

    def __call__(self, pipe: Any, i: int, t: Any, callback_kwargs: dict) -> dict:
        """The callback: step ``i`` is done, the next transformer call belongs to step ``i + 1``."""
        self.step = i + 1
        return {}

    def present(self, schedule: Sequence[bool]) -> bool:
        """Whether the condition with this per-step schedule is given in the current step."""
        if not schedule:
            return False
        return schedule[min(self.step, len(schedule) - 1)]


@contextmanager
def patched(obj: Any, name: str, wrap: Callable[[Callable], Callable]) -> Iterator[None]:
    """Temporarily replace ``obj.name`` by ``wrap(current)`` on this instance only (nests; restores on exit)."""
    shadowed = vars(obj).get(name, _ABSENT)
    object.__setattr__(obj, name, wrap(getattr(obj, name)))
    try:
        yield
    finally:
        if shadowed is _ABSENT:
            object.__delattr__(obj, name)
        else:
            object.__setattr__(obj, name, shadowed)


_ABSENT = object()


@dataclass(frozen=True)
class RenderPlan:
    """How a job maps onto the model's grid.

    Args:
        model_frames: frames the model renders (``k * factor + 1``, at least the job's).
        model_size: (w, h) the model renders at (multiples of its patch grid).
        positions: for job frame ``i``, the model frame ``positions[i]`` shown there.
        steps_run: denoising steps actually run (``round(strength * steps)``).
    """

    model_frames: int
    model_size: tuple[int, int]
    positions: list[int]
    steps_run: int


def _check_fraction(value: float, what: str, low_open: bool = False) -> float:
    """``value`` as a float in [0, 1] (or (0, 1] with ``low_open``), else BadInput naming ``what``."""
    try:
        x = float(value)
    except (TypeError, ValueError) as err:
        raise BadInput(f"{what} must be a number in [0, 1], got {value!r}") from err
    if not (0.0 < x <= 1.0 if low_open else 0.0 <= x <= 1.0):
        span = "(0, 1]" if low_open else "[0, 1]"
        raise BadInput(f"{what} must be in {span}, got {value}")
    return x


def _check_frame(frame: Any, what: str) -> np.ndarray:
    """A uint8 (H, W, 3) frame, or BadInput naming ``what``."""
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise BadInput(f"{what} must be a uint8 (H, W, 3) RGB image, got {arr.dtype} {arr.shape}")
    return arr


class OpenModelEngine:
    """An engine over an open diffusers video pipeline, loaded from a local folder when first used.

    Subclasses set ``name``, ``temporal_factor`` / ``spatial_multiple`` (read from the loaded pipeline),
    and implement ``_load``, ``_activation_bytes`` and ``_generate``.

    Args:
        model: the model folder (a diffusers folder, checked by ``pdedit.engines.choose``).
        device: "cuda", "cuda:1", "cpu"...; default CUDA when available.
        dtype: weights' dtype; default bfloat16 on CUDA, float32 on the CPU.
        offload: none | model (``enable_model_cpu_offload``) | sequential | auto (the fastest that fits).
        vae_tiling: decode (and encode) the video in tiles, which bounds the VAE's memory.
    """

    name = "open"

    def __init__(self, model: str | Path, *, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None, offload: str = "auto", vae_tiling: bool = True):
        self.model = Path(model).expanduser()
        if offload not in OFFLOAD_MODES:
            raise BadInput(f"--offload {offload}: choose one of {', '.join(OFFLOAD_MODES)}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.offload = offload
        self.vae_tiling = vae_tiling
        self._pipe: Any = None
        self._placed: str | None = None

    # ---- what a subclass provides ----

    def _load(self) -> Any:
        """Load the pipeline from ``self.model`` (on the CPU)."""
        raise NotImplementedError

    def _grid(self) -> tuple[int, int]:
        """(temporal factor, spatial multiple) of the loaded pipeline."""
        raise NotImplementedError

    def _activation_bytes(self, plan: RenderPlan) -> int:
        """Estimated peak activation memory of one run (transformer step or VAE decode, the larger)."""
        raise NotImplementedError

    def _generate(self, job: Any, plan: RenderPlan) -> np.ndarray:
        """Run the pipeline: float (model_frames, H, W, 3) in [0, 1] at ``plan.model_size``."""
        raise NotImplementedError

    def _check_job(self, job: Any) -> None:
        """Refuse what this model cannot do (Unsupported), before anything is placed on the device."""

    # ---- shared ----

    @property
    def pipe(self) -> Any:
        """The loaded pipeline (loaded once, on first use), VAE tiling/slicing on when asked."""
        if self._pipe is None:
            pipe = self._load()
            if self.vae_tiling and hasattr(pipe.vae, "enable_tiling"):
                pipe.vae.enable_tiling()
            if hasattr(pipe.vae, "enable_slicing"):
                pipe.vae.enable_slicing()
            self._pipe = pipe
        return self._pipe

    def plan(self, job: Any) -> RenderPlan:
        """Check the job (BadInput naming the bad value) and map it onto the model's grid."""
        from pdedit.conditioning import round_steps

        if int(job.num_frames) < 2:
            raise BadInput(f"--frames {job.num_frames}: a clip needs at least 2 frames")
        if int(job.steps) < 1:
            raise BadInput(f"--steps {job.steps}: at least 1 denoising step is needed")
        _check_fraction(job.tau, "--tau")
        strength = _check_fraction(job.strength, "--strength", low_open=True)
        _check_frame(job.first, "the first-frame edit")
        if job.last is not None:
            _check_frame(job.last, "the last-frame edit")
        steps_run = round_steps(strength, int(job.steps))
        if strength < 1.0:
            if job.source is None:
                raise BadInput(f"--strength {strength} starts from the source video, but there is none: "
                               f"use --strength 1 for pure generation")
            if steps_run < 1:
                raise BadInput(f"--strength {strength} with --steps {job.steps} runs no denoising step: "
                               f"raise --strength or --steps")
        self._check_keyframes(job)
        self._check_job(job)
        factor, multiple = self._grid()
        model_frames = fit_num_frames(int(job.num_frames), factor)
        return RenderPlan(model_frames=model_frames, model_size=fit_size(tuple(job.size), multiple),
                          positions=frame_positions(int(job.num_frames), model_frames), steps_run=steps_run)

    def _check_keyframes(self, job: Any) -> None:
        """Keyframes sit strictly inside the clip (or at its end when there is no last frame)."""
        n = int(job.num_frames)
        for idx, frame in job.keyframes.items():
            if not 0 < int(idx) < n or (int(idx) == n - 1 and job.last is not None):
                place = "1..{}".format(n - 2 if job.last is not None else n - 1)
                raise BadInput(f"--keyframe {idx}: the index must be in {place} (frame 0 is the first-frame "
                               f"edit{' and ' + str(n - 1) + ' the last' if job.last is not None else ''})")
            _check_frame(frame, f"keyframe {idx}")
        for idx, tau in job.keyframe_tau.items():
            is_last = int(idx) == n - 1 and job.last is not None
            if int(idx) not in job.keyframes and not is_last:
                raise BadInput(f"a tau is given for keyframe {idx}, but there is no keyframe {idx}")
            _check_fraction(tau, f"the tau of keyframe {idx}")

    def last_tau(self, job: Any) -> float:
        """The last frame's tau: its keyframe_tau entry when given, else the job's tau."""
        return float(job.keyframe_tau.get(int(job.num_frames) - 1, job.tau))

    def _components(self) -> dict[str, nn.Module]:
        """The pipeline's torch modules by name (what offloading moves)."""
        return {k: v for k, v in self.pipe.components.items() if isinstance(v, nn.Module)}

    def vram_estimates(self, plan: RenderPlan) -> dict[str, int]:
        """Estimated peak device bytes of a run for each offload mode."""
        act = self._activation_bytes(plan)
        comps = self._components()
        return {mode: estimate_vram(comps, act, mode) for mode in ("none", "model", "sequential")}

    def _place(self, plan: RenderPlan) -> None:
        """Check the VRAM estimate against the free device memory and place the pipeline (CPU: no check)."""
        pipe = self.pipe
        if self.device.type != "cuda":
            if self._placed is None:
                place_pipeline(pipe, self.device, "none")
                self._placed = "none"
            return
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        free, _ = torch.cuda.mem_get_info(index)
        available = free + torch.cuda.memory_allocated(index)  # our own weights, if already resident
        w, h = plan.model_size
        mode = check_vram(self.vram_estimates(plan), available, self.offload,
                          f"the {self.name} engine at {w}x{h}, {plan.model_frames} frames")
        if mode != self._placed:
            if self._placed is not None:
                pipe.remove_all_hooks()
                pipe.to("cpu")
            place_pipeline(pipe, self.device, mode)
            self._placed = mode
            logger.info("%s engine: offload %s", self.name, mode)

    def _source_frames(self, job: Any, plan: RenderPlan) -> list[np.ndarray]:
        """The source clip's frames at the model's frame positions (first and last exact)."""
        frames = [np.asarray(f) for f in job.source]
        if len(frames) < 2:
            raise BadInput(f"the source clip has {len(frames)} frame(s); --strength below 1 needs at least 2")
        from pdedit.video import even_indices

        return [frames[i] for i in even_indices(0, len(frames) - 1, plan.model_frames)]

    def _job_kwargs(self, job: Any, plan: RenderPlan, tracker: StepTracker) -> dict[str, Any]:
        """The pipeline arguments every open model takes the same way: text, grid, steps, guidance, seed, step hook."""
        w, h = plan.model_size
        return {
            "prompt": job.prompt,
            "negative_prompt": job.negative_prompt or None,
            "height": h,
            "width": w,
            "num_frames": plan.model_frames,
            "num_inference_steps": int(job.steps),
            "guidance_scale": job.guidance_scale(),
            "generator": torch.Generator(device="cpu").manual_seed(int(job.seed)),
            "output_type": "np",
            "callback_on_step_end": tracker,
        }

    def _call(self, **kwargs: Any) -> np.ndarray:
        """Run the pipeline: the video as float (F', H', W', 3) in [0, 1]."""
        return np.asarray(self.pipe(**kwargs).frames[0])

    def _source_latents(self, job: Any, plan: RenderPlan) -> torch.Tensor:
        """The source clip at the model's frame positions and size, VAE-encoded (the mode): ``(1, C, f, h, w)``."""
        pipe = self.pipe
        w, h = plan.model_size
        video = pipe.video_processor.preprocess_video(frames_to_pil(self._source_frames(job, plan)), height=h,
                                                      width=w)
        video = video.to(device=pipe._execution_device, dtype=pipe.vae.dtype)  # (1, 3, F, H, W) in [-1, 1]
        with torch.no_grad():
            return pipe.vae.encode(video).latent_dist.mode()  # what diffusers' retrieve_latents(argmax) gives

    def render(self, job: Any, progress: bool = False) -> Iterator[np.ndarray]:
        """Render the job: ``job.num_frames`` uint8 (H, W, 3) frames at ``job.size``, in order."""
        from pdedit.video import resize_frame, to_uint8

        plan = self.plan(job)
        self._place(plan)
        self.pipe.set_progress_bar_config(disable=not progress)
        video = self._generate(job, plan)  # (F', H', W', 3) float in [0, 1]
        frames = to_uint8(video[plan.positions])
        size = tuple(job.size)
        if plan.model_size != size:
            frames = [resize_frame(f, size, "fit") for f in frames]
        return iter(frames)
