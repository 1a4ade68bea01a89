"""The web app (`pdedit app`): driven through gradio_client and, when Chromium is present, a real browser."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pdedit.cli import cli
from pdedit.instructions import apply_edit
from pdedit.video import iter_frames, make_sample, open_clip, probe, save_image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
MAGENTA = np.array([255, 0, 255])  # the keyframe brush's default colour


def _free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_magenta(pixels: np.ndarray) -> np.ndarray:
    """Which pixels are close to the brush colour (after H.264: yuv420p blurs chroma a little)."""
    return np.abs(pixels.astype(int) - MAGENTA).max(axis=-1) < 80


@pytest.fixture(scope="module")
def app_clip(tmp_path_factory) -> Path:
    """The 24-frame 320x240 sample clip (a pan over the astronaut photo), large enough to paint on."""
    return make_sample(tmp_path_factory.mktemp("clip") / "sample.mp4")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app started on a free localhost port, with its working folder; closed after the module."""
    pytest.importorskip("gradio", reason="the web app needs the `app` extra: pip install 'pdedit[app]'")
    from pdedit.app import build_app, launch_app

    saved = os.environ.get("GRADIO_TEMP_DIR")
    workdir = tmp_path_factory.mktemp("app")
    app = build_app(workdir=workdir, max_upload_mb=2)
    url = launch_app(app, port=_free_port(), block=False, quiet=True)
    yield url, workdir
    app.close()
    if saved is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = saved


@pytest.fixture(scope="module")
def client(app_url):
    """A gradio_client Client of the running app."""
    gradio_client = pytest.importorskip("gradio_client", reason="gradio_client comes with gradio")
    return gradio_client.Client(app_url[0], verbose=False)


def _keyframe(path: Path) -> dict:
    """An ImageEditor value holding one image (nothing painted), as a client sends it."""
    from gradio_client import handle_file

    return {"background": handle_file(str(path)), "layers": [], "composite": handle_file(str(path))}


def _edit(client, video: Path, first=None, last=None, **params):
    """Call the Edit tab's job through the API with the propagate engine."""
    from gradio_client import handle_file

    args = dict(video=handle_file(str(video)), start=0.0, first_keyframe=first, last_keyframe=last,
                engine="propagate", model="", api_name="/edit")
    args.update(params)
    return client.predict(**args)


def _path(value) -> Path:
    """The file path in a client result (a Video output is a dict with the path under "video")."""
    return Path(value["video"] if isinstance(value, dict) else value)


# ---- gradio_client ------------------------------------------------------------------------------


def test_edit_through_api_returns_playable_mp4_with_every_frame_of_the_window(client, app_url, app_clip, tmp_path):
    first = apply_edit(open_clip(app_clip).first(), "auto:sepia")
    first_png = save_image(tmp_path / "first.png", first)
    video, sheet, download, summary = _edit(client, app_clip, first=_keyframe(first_png), last=None,
                                            last_mode="no last frame (first frame only)")
    out = _path(video)
    info = probe(out)
    assert info.frame_count == probe(app_clip).frame_count == 24
    assert info.video_codec == "h264"
    assert Path(sheet).is_file() and Path(download).is_file()
    assert "propagate" in summary
    # the upload and the job's files live in the app's working folder (removed when the app stops)
    workdir = Path(app_url[1])
    assert list(workdir.rglob("sample.mp4")) and list((workdir / "jobs").rglob("edited.mp4"))
    # the edited first keyframe comes back (within codec tolerance), so the page's keyframe reached the editor
    out_first = next(iter_frames(out)).astype(float)
    source_first = open_clip(app_clip, size=(out_first.shape[1], out_first.shape[0])).first().astype(float)
    expected = apply_edit(source_first.astype(np.uint8), "auto:sepia").astype(float)
    assert np.abs(out_first - expected).mean() < 6 < np.abs(out_first - source_first).mean()


def test_text_file_named_mp4_gets_a_message_not_a_traceback(client, app_url, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 10)
    outputs_before = sorted(Path(app_url[1]).rglob("edited.mp4"))
    for call in (lambda: _edit(client, bad), lambda: client.predict(handle_file(str(bad)), api_name="/load_video")):
        with pytest.raises(AppError) as caught:
            call()
        message = str(caught.value)
        assert "notes.mp4" in message and "video" in message
        assert "Traceback" not in message and "/gradio/" not in message
    assert sorted(Path(app_url[1]).rglob("edited.mp4")) == outputs_before  # no output for a failed job


def test_upload_over_the_limit_is_refused_with_the_limit_in_the_message(client, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (3 * 2**20))  # the test app's limit is 2 MB
    with pytest.raises(Exception) as caught:
        _edit(client, big)
    # gradio_client refuses before sending; the handlers check again for anything that slips past
    assert "exceeds the maximum file size" in str(caught.value)


def test_gallery_shows_every_weight_free_edit_and_converter(client, app_clip, tmp_path):
    from gradio_client import handle_file

    from pdedit.instructions import EDITS, WEIGHT_FREE_CONVERSIONS

    image = save_image(tmp_path / "frame.png", open_clip(app_clip).first())
    tiles = client.predict(handle_file(str(image)), api_name="/gallery")
    captions = [tile["caption"] for tile in tiles]
    assert "original" in captions and "auto:sepia" in captions and "sketch:xdog" in captions
    assert len(captions) >= len(EDITS) + len(WEIGHT_FREE_CONVERSIONS) - 1  # colortransfer needs a reference
    pixels = [np.asarray(__import__("PIL.Image").Image.open(tile["image"]).convert("RGB")) for tile in tiles]
    assert len({p.tobytes() for p in pixels}) == len(pixels)  # each tile differs from the others


def test_jobs_run_one_at_a_time_and_waiting_ones_see_their_position(client, app_clip, tmp_path):
    from gradio_client import handle_file

    image = save_image(tmp_path / "frame.png", open_clip(app_clip).first())
    jobs = [client.submit(handle_file(str(image)), api_name="/gallery") for _ in range(2)]
    waiting, overlap, both_before = set(), False, False
    deadline = time.time() + 60
    while not all(job.done() for job in jobs) and time.time() < deadline:
        statuses = [job.status() for job in jobs]
        running = sum(st.code.name in ("PROCESSING", "PROGRESS") for st in statuses)
        # A finished job's status can still read PROCESSING for one poll while the next one starts;
        # two jobs running together shows as two polls in a row (the gallery takes far longer than 50 ms).
        overlap |= running > 1 and both_before
        both_before = running > 1
        # either may be served first; the other waits with its place in the queue
        waiting |= {st.rank for st in statuses if running and st.code.name == "IN_QUEUE" and st.rank is not None}
        time.sleep(0.05)
    assert all(job.done() for job in jobs) and len(jobs[1].result()) == len(jobs[0].result())
    assert not overlap
    assert waiting == {0}  # "next in line" while the other job ran


def test_generate_without_a_model_says_how_to_get_one(client, app_clip, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    image = save_image(tmp_path / "frame.png", open_clip(app_clip).first())
    with pytest.raises(AppError, match="model init --tiny"):
        client.predict(prompt="a walk", first_image=handle_file(str(image)), last_canvas=None, model="",
                       api_name="/generate")


def test_generate_with_a_tiny_model_returns_the_asked_frames(client, app_clip, tiny_model_dir, single_thread_torch,
                                                             tmp_path):
    from gradio_client import handle_file

    image = save_image(tmp_path / "frame.png", open_clip(app_clip).first())
    sketch = np.full((48, 64, 3), 255, np.uint8)
    sketch[20:28, 8:56] = 0  # a black bar on white, as drawn on the blank canvas
    sketch_png = save_image(tmp_path / "sketch.png", sketch)
    video, download = client.predict(prompt="a walk", first_image=handle_file(str(image)),
                                     last_canvas=_keyframe(sketch_png), model=str(tiny_model_dir), frames=4, fps=8,
                                     size="64x48", tau=0.5, steps=2, guidance=1.0, seed=0, api_name="/generate")
    info = probe(_path(video))
    assert (info.frame_count, info.width, info.height, info.fps) == (4, 64, 48, 8)


def test_generate_tab_runs_an_open_engine_with_its_own_defaults(client, app_clip, single_thread_torch, tmp_path):
    from gradio_client import handle_file

    from pdedit.model_init import build_tiny_ltx_pipeline

    build_tiny_ltx_pipeline(tmp_path / "ltx")
    image = save_image(tmp_path / "frame.png", open_clip(app_clip).first())
    video, _ = client.predict(prompt="a walk", first_image=handle_file(str(image)), last_canvas=None,
                              model=str(tmp_path / "ltx"), frames=9, fps=0, size="64x32", tau=1.0, steps=2,
                              guidance=0, seed=0, engine="auto", api_name="/generate")
    info = probe(_path(video))
    assert (info.frame_count, info.width, info.height, info.fps) == (9, 64, 32, 25)  # fps 0: LTX's own 25


# ---- the command -------------------------------------------------------------------------------------


def test_app_command_without_gradio_exits_2_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` raise ImportError
    result = CliRunner().invoke(cli, ["app", "--port", str(_free_port())])
    assert result.exit_code == 2
    assert "pip install 'pdedit[app]'" in result.output


def test_app_command_help_lists_its_options():
    result = CliRunner().invoke(cli, ["app", "--help"])
    assert result.exit_code == 0
    for option in ("--model", "--host", "--port", "--max-upload-mb", "127.0.0.1", "Example"):
        assert option in result.output


# ---- a real browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Headless system Chromium driven by Playwright; skips when either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (dev extra)")
    executable = CHROMIUM if CHROMIUM.is_file() else shutil.which("chromium")
    if not executable:
        pytest.skip("the browser test needs Chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_browser_paint_on_last_frame_shows_in_the_output_video(browser, app_url, app_clip, tmp_path):
    url, _ = app_url
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (3 * 2**20))  # over the test app's 2 MB limit: a message in the page, no upload
    page.locator("#source-video input[type=file]").set_input_files(str(big))
    page.get_by_text("exceed the maximum allowed size").wait_for(timeout=15000)
    page.locator("#source-video input[type=file]").set_input_files(str(app_clip))
    page.wait_for_function("document.querySelector('#video-facts').innerText.includes('24 frames')", timeout=30000)
    canvas = page.locator("#last-editor canvas").first
    canvas.wait_for(state="visible", timeout=15000)
    time.sleep(1.5)  # the keyframe is drawn into the canvas after the value arrives

    # a horizontal stroke through the middle of the canvas: the keyframe is shown centred in it
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 60, cy)
    page.mouse.down()
    for step in range(1, 13):
        page.mouse.move(cx - 60 + 10 * step, cy, steps=2)
    page.mouse.up()
    time.sleep(0.5)

    page.click("#run-edit")  # engine "auto" without a model: the weight-free propagate engine
    video = page.locator("#output-video video")
    video.wait_for(state="attached", timeout=120000)
    time.sleep(1.0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app_edit_browser.png"), full_page=True)

    response = page.request.get(video.get_attribute("src"))
    assert response.ok
    out = tmp_path / "downloaded.mp4"
    out.write_bytes(response.body())
    frames = list(iter_frames(out))
    assert len(frames) == 24
    h, w = frames[-1].shape[:2]
    centre = (slice(h // 2 - 3, h // 2 + 4), slice(w // 2 - 3, w // 2 + 4))
    source_last = open_clip(app_clip, size=(w, h)).last()
    assert _is_magenta(frames[-1][centre]).mean() > 0.9, "the painted stroke is missing from the last frame"
    assert _is_magenta(source_last[centre]).mean() < 0.1
    assert _is_magenta(frames[0][centre]).mean() < 0.1, "the first frame was not painted"
    # the paint is a horizontal band through the middle, not smeared over the frame
    rows = np.nonzero(_is_magenta(frames[-1]).any(axis=1))[0]
    assert rows.min() > h * 0.25 and rows.max() < h * 0.75
    page.close()
