"""Engines carry their capabilities; one generation step serves generate, story and the app; tiny folders of each kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run

from pdedit import engines
from pdedit.editor import edit_video
from pdedit.engines import ENGINES, choose, get_engine
from pdedit.errors import BadInput, MissingModel, Unsupported
from pdedit.video import make_sample, probe, save_image

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def _folder(tmp_path, name: str, **index) -> str:
    """A folder whose model_index.json names ``name`` (enough to choose an engine; nothing is loaded)."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": name, **index}))
    return folder


def _pixeldance_folder(tmp_path, **index):
    """A PixelDance folder's index and (empty) component folders: enough to choose the engine."""
    parts = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
    folder = _folder(tmp_path, "PixelDancePipeline", **{p: ["x", "y"] for p in parts}, **index)
    for part in parts:
        (folder / part).mkdir()
    return folder


class _Recorder:
    """A stand-in engine: remembers the job and renders black frames."""

    name = "recorder"
    jobs: list = []

    def render(self, job, progress=False):
        self.jobs.append(job)
        return iter([np.zeros((job.size[1], job.size[0], 3), np.uint8)] * job.num_frames)


@pytest.fixture
def recorder(monkeypatch):
    """Every engine built by the registry is a _Recorder; yields the list of jobs it was given."""
    jobs = []
    monkeypatch.setattr(_Recorder, "jobs", jobs)
    monkeypatch.setattr(engines, "build_engine", lambda spec, model=None, **options: _Recorder())
    return jobs


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 1-second 64x48 clip at 12 fps."""
    return make_sample(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1.0, fps=12, size=(64, 48))


@pytest.mark.parametrize(("cls", "engine", "guidance", "frames", "fps"), [
    ("WanImageToVideoPipeline", "wan", 5.0, 81, 16.0),
    ("LTXConditionPipeline", "ltx", 3.0, 121, 25.0),
    ("PixelDancePipeline", "pixeldance", 7.5, 16, 8.0),
])
def test_each_engine_fills_in_its_own_defaults(tmp_path, cls, engine, guidance, frames, fps):
    choice = choose("auto", _pixeldance_folder(tmp_path) if cls == "PixelDancePipeline" else _folder(tmp_path, cls))
    assert choice.name == engine
    job = choice.job(source=None, first=np.zeros((8, 8, 3), np.uint8), last=None, size=(8, 8))
    assert (job.guidance, job.num_frames, job.fps, job.steps) == (guidance, frames, fps, 25)
    given = choice.job(source=None, first=job.first, last=None, size=(8, 8), guidance=1.5, num_frames=9, fps=4.0)
    assert (given.guidance, given.num_frames, given.fps) == (1.5, 9, 4.0)


def test_a_pixeldance_folder_gives_its_own_clip_length_and_fps(tmp_path):
    choice = choose("auto", _pixeldance_folder(tmp_path, num_frames=12, fps=6))
    assert (choice.frames, choice.fps) == (12, 6.0)


def test_pdedit_edit_without_frames_makes_the_models_clip_length(tmp_path, clip, recorder):
    # --help promises the model's clip length: 81 frames for Wan, not a fixed 16
    result = edit_video(clip, "auto:sepia", "auto:sepia", tmp_path / "o.mp4", model=_wan_folder(tmp_path / "w"),
                        size=(48, 32))
    assert result.frames == 81 and probe(tmp_path / "o.mp4").frame_count == 81
    assert recorder[0].guidance == 5.0


def test_an_edit_reads_the_model_folder_once(tmp_path, clip, recorder, monkeypatch):
    from pdedit import model_folder

    reads = []
    original = model_folder.read_model_index

    def counting(folder, hint):
        reads.append(folder)
        return original(folder, hint)

    for module in (engines, engines.specs):
        monkeypatch.setattr(module, "read_model_index", counting)
    for engine in ("auto", "wan"):
        reads.clear()
        edit_video(clip, "auto:sepia", None, tmp_path / f"{engine}.mp4", engine=engine, frames=5, size=(48, 32),
                   model=_wan_folder(tmp_path / engine))
        assert len(reads) == 1, engine


def _wan_folder(path):
    """A Wan folder (index only) at ``path``."""
    path.mkdir()
    (path / "model_index.json").write_text(json.dumps({"_class_name": "WanImageToVideoPipeline"}))
    return path


def test_options_an_engine_does_not_take_are_refused_naming_those_that_do(tmp_path):
    with pytest.raises(BadInput, match="--scheduler ddim applies to the pixeldance engine"):
        ENGINES["wan"].check_options({"scheduler": "ddim"})
    with pytest.raises(BadInput, match="--offload model applies to the wan and ltx engine"):
        ENGINES["pixeldance"].check_options({"offload": "model", "scheduler": None})
    assert ENGINES["ltx"].check_options({"offload": None}) == {}


def test_keyframes_are_refused_by_the_engines_that_take_none(tmp_path):
    keys = {3: np.zeros((8, 8, 3), np.uint8)}
    for name, takes in (("wan", False), ("pixeldance", False), ("ltx", True), ("propagate", True)):
        assert ENGINES[name].takes_keyframes is takes
    with pytest.raises(Unsupported, match="first and a last frame only"):
        choose("auto", _wan_folder(tmp_path / "w")).check_keyframes(keys)
    choose("propagate").check_keyframes(keys)  # no error


def test_an_engine_without_a_model_says_how_to_get_one():
    with pytest.raises(BadInput, match="hf download Lightricks/LTX-Video"):
        choose("ltx")
    with pytest.raises(BadInput, match="model init --tiny"):
        get_engine("pixeldance")


def test_a_folder_no_engine_runs_is_missing_model(tmp_path):
    with pytest.raises(MissingModel, match="no pdedit engine runs"):
        choose("auto", _folder(tmp_path, "StableDiffusionPipeline"))


def test_generate_refuses_the_propagate_engine_with_exit_2(tmp_path, tiny_model_dir):
    first = save_image(tmp_path / "a.png", np.zeros((64, 64, 3), np.uint8))
    result = run("generate", "--engine", "propagate", "--model", tiny_model_dir, "--prompt", "x", "--first", first,
                 "-o", tmp_path / "o.mp4")
    assert result.exit_code == 2 and "does not generate" in result.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_tiny_kinds_of_the_cli_are_the_builders():
    from pdedit.cli import TINY_KINDS
    from pdedit.model_init import TINY_BUILDERS

    assert TINY_KINDS == list(TINY_BUILDERS)


@pytest.mark.parametrize("kind", ["wan", "ltx"])
def test_model_init_tiny_kind_makes_a_folder_story_runs_on(kind, tmp_path):
    folder = tmp_path / f"tiny-{kind}"
    result = run("model", "init", "--tiny", "--kind", kind, folder)
    assert result.exit_code == 0, result.output
    assert choose("auto", folder).name == kind
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically
    save_image(tmp_path / "first.png", np.random.default_rng(0).integers(0, 256, (32, 64, 3), np.uint8))
    board = tmp_path / "story.yaml"
    board.write_text("first: first.png\nframes: 5\nsteps: 1\nshots:\n  - prompt: a fox\n  - prompt: a dog\n")
    out = tmp_path / "story.mp4"
    result = run("story", board, "--model", folder, "--size", "64x32", "-o", out)
    assert result.exit_code == 0, result.output
    info = probe(out)
    # story's defaults come from the engine: fps 16 for wan, 25 for ltx; two shots of 5 share one frame
    assert (info.frame_count, info.width, info.height, info.fps) == (9, 64, 32, ENGINES[kind].fps)


def test_model_init_kind_refuses_pixeldance_only_options(tmp_path):
    result = run("model", "init", "--tiny", "--kind", "wan", "--frames", 9, tmp_path / "w")
    assert result.exit_code == 2 and "--frames" in result.stderr
    assert not (tmp_path / "w").exists()
