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
