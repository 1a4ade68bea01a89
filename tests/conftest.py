"""Shared fixtures: real clips from ../shared/data/videos, tiny models built on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

VIDEOS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


@pytest.fixture(scope="session")
def videos_dir() -> Path:
    """The folder of real clips; skips the test when it is absent (a user's clone has no ../shared)."""
    if not VIDEOS_DIR.is_dir():
        pytest.skip(f"real clips not found at {VIDEOS_DIR} (only present beside the project checkout)")
    return VIDEOS_DIR


@pytest.fixture(scope="session")
def real_video(videos_dir):
    """Returns a function name -> path of one real clip, skipping when that clip is missing."""

    def get(name: str) -> Path:
        path = videos_dir / name
        if not path.is_file():
            pytest.skip(f"real clip {name} not found in {videos_dir}")
        return path

    return get


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory) -> Path:
    """A short real-image clip made by pdedit.video.make_sample: 12 frames, 64x48, 6 fps, no audio."""
    from pdedit.video import make_sample

    return make_sample(tmp_path_factory.mktemp("sample") / "sample.mp4", seconds=2.0, fps=6, size=(64, 48))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random PixelDance model folder (seeded), built once per session with build_tiny_pipeline."""
    from pdedit.model_init import build_tiny_pipeline

    folder = tmp_path_factory.mktemp("models") / "tiny"
    build_tiny_pipeline(folder, seed=0)
    return folder


@pytest.fixture(scope="module")
def single_thread_torch():
    """Run a test module's torch ops on one thread, restoring the count after.

    On this shared 2-core machine, torch's default of 2 threads spins against the neighbours' work:
    a tiny-model sampling run measured 9.4 s with 2 threads under load and 0.2 s with 1.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def train_killed_in_step(monkeypatch):
    """Returns ``run(config, step=3)``: ``finetune.train.train`` stopped by a simulated kill in that step's loss.

    The resume tests use it to break a run after a checkpoint and compare its resumed end with an unbroken run.
    """

    def run(config, step: int = 3) -> None:
        import finetune.train as ft

        real_loss, calls = ft.diffusion_loss, {"n": 0}

        def crash(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == step:
                raise KeyboardInterrupt("simulated kill")
            return real_loss(*args, **kwargs)

        monkeypatch.setattr(ft, "diffusion_loss", crash)
        with pytest.raises(KeyboardInterrupt):
            ft.train(config)
        monkeypatch.setattr(ft, "diffusion_loss", real_loss)

    return run
