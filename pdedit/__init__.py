"""pdedit: zero-shot video editing and sketch-conditioned video generation with PixelDance.

The public API (what a notebook imports) is re-exported here. Names are resolved lazily, so
``import pdedit`` (and the CLI's start-up) does not pay for torch and diffusers until they are used.
"""

from __future__ import annotations

import importlib

from pdedit.errors import BadInput, MissingModel, PdeditError, Unsupported

__version__ = "0.1.0"

# public name -> module that defines it (the one definition; nothing is re-implemented here)
_EXPORTS = {
    # video: reading, windows, writing, preview sheets
    **{
        name: "pdedit.video"
        for name in (
            "VideoInfo", "probe", "parse_size", "default_size", "resize_frame", "aspect_mismatch",
            "Window", "even_indices", "plan_window", "iter_frames", "Clip", "open_clip", "write_video", "check_output",
            "atomic_path", "load_image", "save_image", "preview_sheet", "make_sample", "to_uint8",
        )
    },
    # conditioning: c_image layout, image noise, last-frame dropping, tau schedule
    **{
        name: "pdedit.conditioning"
        for name in ("build_c_image", "perturb_c_image", "drop_last_frame", "round_steps", "last_frame_schedule")
    },
    # instructions: edits and converters
    **{
        name: "pdedit.instructions"
        for name in ("parse_edit_spec", "apply_edit", "is_edit_spec", "convert", "EditSpec", "EDITS",
                     "CONVERTERS", "WEIGHT_FREE_CONVERSIONS", "gallery")
    },
    # models and the sampler
    **{name: "pdedit.models" for name in ("PixelDanceUNet", "convert_t2v_unet", "tiny_unet_config")},
    **{
        name: "pdedit.model_init"
        for name in ("build_tiny_pipeline", "build_tiny_model", "convert_t2v_pipeline")
    },
    **{
        name: "pdedit.pipeline"
        for name in ("PixelDancePipeline", "SCHEDULERS", "encode_frames", "encode_video", "decode_video")
    },
    # engines, the generation step, the editor and the comparison video
    **{name: "pdedit.engines" for name in ("EditJob", "Engine", "EngineSpec", "ENGINES", "choose", "get_engine",
                                           "choose_engine")},
    "load_pipeline": "pdedit.engines.pixeldance",
    **{name: "pdedit.generation" for name in ("Generator", "open_generator", "generate_video")},
    **{name: "pdedit.story" for name in ("generate_long", "Shot", "load_storyboard")},
    **{name: "pdedit.editor" for name in ("edit_video", "EditResult")},
    "write_comparison": "pdedit.compare",
    # evaluation: edit metrics and model metrics
    **{name: "pdedit.evaluate.edit" for name in ("evaluate_edits", "EditReport")},
    **{name: "pdedit.evaluate.model" for name in ("evaluate_model", "Protocol", "Extractors")},
    # many jobs from one manifest
    **{name: "pdedit.batch" for name in ("run_batch", "read_jobs", "BatchSummary")},
}

__all__ = ["PdeditError", "BadInput", "MissingModel", "Unsupported", "__version__", *_EXPORTS]


def __getattr__(name: str):
    """Import a public name from its defining module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pdedit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
