"""The local web app (`pdedit app`): a gradio page over the same public functions as the CLI.

Three tabs: **Edit** (a video, its window, the first and last keyframes edited by an automatic edit,
an uploaded image or paint on a canvas, then `pdedit.editor.edit_video`), **Generate** (a prompt and
first/last-frame instructions through any generative engine, ``pdedit.generation``) and **Gallery** (every weight-free
edit and converter on one image). The app holds no editing logic: it turns page inputs into the
arguments of `edit_video`, `apply_edit`, `convert` and `generate_video`, and their errors into messages
in the page (`gr.Error`), never tracebacks.

Every upload and output lives in one working folder (gradio's upload cache is pointed there too),
removed when the app stops. Jobs run one at a time through gradio's queue; waiting users see
their position.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import signal
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pdedit import video as pv
from pdedit.errors import BadInput, PdeditError

# Before gradio is imported: the app is local, so nothing should report usage to the network.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402  (after the environment above)
import PIL.Image  # noqa: E402

from pdedit.engines import ENGINES, generative_engines  # noqa: E402
from pdedit.instructions import EDITS, CONVERTERS, apply_edit, gallery  # noqa: E402

__all__ = ["build_app", "launch_app", "serve", "DEFAULT_MAX_UPLOAD_MB"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_MB = 500
KEEP = "keep (no automatic edit)"
USE_LAST = "use the edited last frame"
NO_LAST = "no last frame (first frame only)"
# Colours of the keyframe brush; the first is the default: a colour rare in real footage, so
# a painted mark stands out in the output.
EDIT_COLOURS = ["#ff00ff", "#ff0000", "#ffeb3b", "#00c853", "#2962ff", "#ffffff", "#000000"]
SKETCH_COLOURS = ["#000000", "#ff0000", "#2962ff", "#00c853"]
# The window sliders' range before a video sets it (API calls never see that update): an end at or
# past the clip's end means "to the end".
MAX_WINDOW_S = 24 * 3600.0
# Edits and generations share one slot of the queue (with its default limit of 1), so a second job,
# from this user or another, waits with its position shown; light page updates run beside them.
JOBS = "jobs"
GALLERY_SIDE = 512  # gallery inputs larger than this are shrunk first: the gallery is for choosing by eye


# ---- turning errors into messages in the page ------------------------------------------------


def _shown(fn: Callable) -> Callable:
    """Wrap a handler so a PdeditError becomes its message in the page, and nothing shows a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except PdeditError as err:
            raise gr.Error(str(err), title=type(err).__name__, print_exception=False) from None
        except Exception as err:  # a bug, not the user's doing: the log gets the traceback, the page a line
            logger.exception("app handler %s failed", fn.__name__)
            raise gr.Error(f"unexpected error ({type(err).__name__}: {err}); the app's log has the details",
                           print_exception=False) from None

    return wrapper


def _checked(component: gr.components.Component) -> gr.components.Component:
    """Make an image component's unreadable uploads a clear message instead of gradio's bare 'Error'.

    The component's own preprocess is wrapped on the instance: a subclass would make gradio write a
    .pyi stub beside this module.
    """
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except (OSError, ValueError, SyntaxError, PIL.UnidentifiedImageError) as err:
            name = getattr(payload, "orig_name", None) or "the upload"
            raise gr.Error(f"{name} is not an image pdedit can read ({type(err).__name__}); "
                           f"upload a PNG, JPEG or WebP file", print_exception=False) from None

    component.preprocess = checked
    return component


# ---- what the handlers share --------------------------------------------------------------------


class _Session:
    """The app's working folder, upload limit and default model; the handlers are its methods."""

    def __init__(self, workdir: Path, model: str | None, max_upload_mb: int):
        self.workdir = workdir
        self.model = model
        self.max_upload_mb = max_upload_mb
        self._generators: dict[tuple[str, str], Any] = {}

    def job_dir(self, kind: str) -> Path:
        """A fresh folder for one job's outputs, inside the working folder."""
        folder = self.workdir / "jobs" / f"{kind}-{uuid.uuid4().hex[:10]}"
        folder.mkdir(parents=True)
        return folder

    def check_upload(self, path: str | None, what: str) -> Path:
        """The uploaded file as a Path, or BadInput when it is missing or over the size limit."""
        if not path:
            raise BadInput(f"no {what} given: upload one first")
        file = Path(path)
        if not file.is_file():
            raise BadInput(f"the uploaded {what} {file.name} is gone from the app's folder: upload it again")
        size_mb = file.stat().st_size / 2**20
        if size_mb > self.max_upload_mb:
            raise BadInput(f"{file.name} is {size_mb:.0f} MB, over this app's upload limit of {self.max_upload_mb} MB: "
                           f"cut it shorter, use `pdedit edit` on the command line, or restart the app with "
                           f"--max-upload-mb")
        return file

    def probe_video(self, path: str | None) -> pv.VideoInfo:
        """Probe an uploaded video; its error names the file the user uploaded, not the cache path."""
        file = self.check_upload(path, "video")
        try:
            return pv.probe(file)
        except PdeditError as err:
            raise type(err)(_short_paths(str(err), file)) from None

    def model_dir(self, text: str | None) -> str | None:
        """The model folder typed in the page, else the one the app was started with."""
        text = (text or "").strip()
        return text or self.model

    # ---- Edit tab ----

    def window(self, path: str | None, start: float | None, end: float | None) -> tuple[float | None, float | None]:
        """The window in seconds for `open_clip` / `edit_video`: an end at or past the clip's end means the end."""
        info = self.probe_video(path)
        start = float(start) if start else None
        end = None if end is None or float(end) >= info.duration else float(end)
        return start, end

    def keyframes(self, path: str | None, start: float | None, end: float | None):
        """The window's first and last frames at the video's own size, so paint maps 1:1 onto the output."""
        info = self.probe_video(path)
        start, end = self.window(path, start, end)
        clip = pv.open_clip(path, start=start, end=end, size=(info.width, info.height))
        return clip.first(), clip.last()

    def load_video(self, path: str | None):
        """On upload: the video's facts, the window sliders set to the whole clip, and its keyframes."""
        if not path:
            return ("Upload a video or use the sample clip.", gr.update(visible=False), gr.update(visible=False),
                    None, None, None, None, KEEP, KEEP)
        info = self.probe_video(path)
        first, last = self.keyframes(path, None, None)
        audio = f", audio {info.audio_codec}" if info.has_audio else ", no audio"
        facts = (f"**{Path(path).name}**: {info.width}x{info.height}, {info.fps:g} fps, {info.frame_count} frames, "
                 f"{info.duration:.2f} s, {info.video_codec}{audio}")
        step = max(round(1.0 / info.fps, 3), 0.001)
        return (facts,
                gr.update(minimum=0.0, maximum=info.duration, value=0.0, step=step, visible=True),
                gr.update(minimum=0.0, maximum=info.duration, value=info.duration, step=step, visible=True),
                _editor_value(first), _editor_value(last), first, last, KEEP, KEEP)

    def change_window(self, path: str | None, start: float, end: float):
        """New window: its first and last frames, unedited."""
        if not path:
            return None, None, None, None, KEEP, KEEP
        if end <= start:
            raise BadInput(f"the window starts at {start:g} s and ends at {end:g} s: move End after Start")
        first, last = self.keyframes(path, start, end)
        return _editor_value(first), _editor_value(last), first, last, KEEP, KEEP

    def sample_clip(self) -> str:
        """The sample clip (a slow pan over a photo), written once into the working folder."""
        path = self.workdir / "sample.mp4"
        if not path.is_file():
            pv.make_sample(path)
        return str(path)

    def edit(self, video: str | None, start: float | None, end: float | None, frames: float | None, size: str | None,
             first_keyframe: dict | None, last_keyframe: dict | None, last_mode: str, instruction: str,
             engine: str, model: str | None, prompt: str, tau: float, strength: float, steps: float,
             guidance: float, seed: float, progress=gr.Progress()):
        """Run `edit_video` on the uploaded video with the keyframes as painted; returns video, sheet, file, summary."""
        from pdedit.editor import edit_video  # the heavy part of the app loads on the first job

        start, end = self.window(video, start, end)
        use_last = last_mode != NO_LAST
        first = _editor_image(first_keyframe)
        last = _editor_image(last_keyframe) if use_last else None
        if first is None or (use_last and last is None):
            # a keyframe left empty (an API call without it): the window's own frame, unedited
            src_first, src_last = self.keyframes(video, start, end)
            first = src_first if first is None else first
            last = src_last if use_last and last is None else last
        job = self.job_dir("edit")
        first_path = pv.save_image(job / "first_edit.png", first)
        last_path = pv.save_image(job / "last_edit.png", last) if last is not None else None
        output = job / "edited.mp4"
        sheet = job / "preview.png"
        progress(0.0, desc="checking the inputs")
        # gradio's track_tqdm breaks on the editor's nested, lazily iterated bars (IndexError in
        # gradio.helpers), so the page shows the editor's one-line report instead of its bars.
        result = edit_video(
            video, str(first_path), str(last_path) if last_path else None, output=output,
            engine=engine or "auto", model=self.model_dir(model), start=start, end=end,
            frames=int(frames) if frames else None, size=pv.parse_size(size.strip()) if size and size.strip() else None,
            prompt=prompt or "", tau=float(tau), strength=float(strength), steps=int(steps),
            guidance=float(guidance) if guidance else None,
            seed=int(seed), instruction=instruction or "image", preview=sheet,
            report=lambda line: progress(0.1, desc=line),
        )
        preview = str(result.preview) if result.preview else None
        return str(result.output), preview, str(result.output), _summary(result)

    def preview_edit(self, frame: np.ndarray | None, name: str, options: str):
        """Live preview of an automatic edit on a source keyframe, put on the canvas (paint is reset)."""
        if frame is None:
            return None
        if not name or name == KEEP:
            return _editor_value(frame)
        spec = f"auto:{name}" + (f":{options.strip()}" if options and options.strip() else "")
        return _editor_value(apply_edit(np.asarray(frame, dtype=np.uint8), spec))

    # ---- Generate tab ----

    def generate(self, prompt: str, first_image: np.ndarray | None, last_canvas: dict | None, model: str | None,
                 frames: float | None, fps: float | None, size: str | None, tau: float, steps: float,
                 guidance: float | None, seed: float, engine: str | None = "auto",
                 progress=gr.Progress(track_tqdm=True)):
        """One generation step (`pdedit.generation`): the prompt, the first image, an optional last image or sketch.

        Any generative engine the model folder is for; frames, fps and guidance at 0 take the engine's own.
        """
        from pdedit.generation import generate_video, open_generator

        folder = self.model_dir(model)
        if not folder:
            raise BadInput("generating needs a model: type its folder in Model, or start the app with "
                           "`pdedit app --model DIR` (make a tiny test model with `pdedit model init --tiny DIR`)")
        if first_image is None:
            raise BadInput("no first image given: upload the image the video should start from")
        first = np.asarray(first_image, dtype=np.uint8)[..., :3]
        last = _editor_image(last_canvas, blank_is_none=True)
        key = (engine or "auto", folder)
        if key not in self._generators:
            progress(0.0, desc="loading the model")
            self._generators = {key: open_generator(*key)}  # one model in memory at a time
        gen = self._generators[key]
        job = gen.job(first, last, size=pv.parse_size(size.strip()) if size and size.strip() else None,
                      prompt=prompt or "", frames=int(frames) if frames else None, fps=float(fps) if fps else None,
                      tau=float(tau), steps=int(steps), guidance=float(guidance) if guidance else None,
                      seed=int(seed))
        video = generate_video(job, gen.engine, progress=True)  # the page follows its tqdm bar
        output = pv.write_video(self.job_dir("generate") / "generated.mp4", video, job.fps)
        return str(output), str(output)

    # ---- Gallery tab ----

    def gallery(self, image: np.ndarray | None):
        """Every weight-free edit and converter on the uploaded image, labelled with its spec."""
        if image is None:
            raise BadInput("no image given: upload an image (or a frame saved with `pdedit frames`)")
        frame = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
        h, w = frame.shape[:2]
        if max(w, h) > GALLERY_SIDE:
            frame = pv.resize_frame(frame, pv.default_size(w, h, GALLERY_SIDE))
        tiles, labels = gallery(frame)
        return list(zip(tiles, labels))


# ---- small conversions between page values and frames -----------------------------------------


def _short_paths(message: str, file: Path) -> str:
    """A message about an upload, with gradio's cache path replaced by the file's name."""
    return message.replace(str(file), file.name)


def _editor_value(frame: np.ndarray | None) -> dict | None:
    """An ImageEditor value showing ``frame`` with nothing painted on it."""
    if frame is None:
        return None
    return {"background": frame, "layers": [], "composite": None}


def _flatten(image: np.ndarray) -> np.ndarray:
    """RGB uint8 from a canvas image: transparent parts become white (a blank sketch canvas is white)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.shape[-1] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255.0
        rgb = image[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return (rgb + 0.5).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)


def _editor_image(value: dict | None, blank_is_none: bool = False) -> np.ndarray | None:
    """The edited keyframe an ImageEditor holds: its composite (background and paint), RGB uint8.

    None when the editor is empty; with ``blank_is_none`` also when nothing was drawn on a blank canvas.
    """
    if not value:
        return None
    composite = value.get("composite")
    background = value.get("background")
    image = composite if composite is not None else background
    if image is None:
        return None
    image = np.asarray(image)
    if blank_is_none and background is None and (image.ndim < 3 or image.shape[-1] < 4 or not image[..., 3].any()):
        return None
    return _flatten(image)


def _summary(result: Any) -> str:
    """What `edit_video` did, in two lines for the page."""
    w, h = result.size
    took = result.timings.get("total")
    return (f"**{result.engine}** engine: {result.reason}  \n"
            f"{result.frames} frames at {result.fps:g} fps, {w}x{h}, {result.seconds:.2f} s"
            f"{', with audio' if result.audio else ''}" + (f"; took {took:.1f} s" if took else ""))


# ---- the page -------------------------------------------------------------------------------------


def _engine_choices() -> list[str]:
    """"auto" and the registered engines."""
    return ["auto", *ENGINES]


def _keyframe_column(label: str, elem: str) -> tuple:
    """One keyframe's controls: automatic edit, its options, and the paint canvas."""
    auto = gr.Dropdown([KEEP, *EDITS], value=KEEP, label=f"{label}: automatic edit", elem_id=f"{elem}-auto")
    options = gr.Textbox(label="edit options (key=value,...)", placeholder="e.g. degrees=90", elem_id=f"{elem}-options")
    editor = _checked(gr.ImageEditor(
        label=f"{label} (paint on it, or upload an edited image)", type="numpy", format="png", sources=["upload"],
        brush=gr.Brush(colors=EDIT_COLOURS, default_color=EDIT_COLOURS[0], default_size=16),
        eraser=gr.Eraser(default_size=16), layers=False, transforms=(), height=380, elem_id=f"{elem}-editor",
    ))
    return auto, options, editor


def _edit_tab(session: _Session) -> None:
    """The Edit tab: source video and window, keyframe editing, engine settings, output."""
    first_src = gr.State(None)
    last_src = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            video = gr.Video(label="Source video", sources=["upload"], height=260, elem_id="source-video")
            sample = gr.Button("Use the sample clip", size="sm", elem_id="sample-button")
            facts = gr.Markdown("Upload a video or use the sample clip.", elem_id="video-facts")
            start = gr.Slider(0.0, MAX_WINDOW_S, value=0.0, label="Window start (s)", visible=False,
                              elem_id="window-start")
            end = gr.Slider(0.0, MAX_WINDOW_S, value=MAX_WINDOW_S, label="Window end (s)", visible=False,
                            elem_id="window-end")
            with gr.Row():
                frames = gr.Number(0, precision=0, minimum=0, label="Frames (0: every frame)", elem_id="frames")
                size = gr.Textbox("", label="Size WxH", placeholder="the video's (propagate), else 512 max",
                                  elem_id="size")
        with gr.Column(scale=3):
            with gr.Row():
                with gr.Column():
                    first_auto, first_opts, first_editor = _keyframe_column("First frame", "first")
                with gr.Column():
                    last_auto, last_opts, last_editor = _keyframe_column("Last frame", "last")
                    with gr.Row():
                        last_mode = gr.Radio([USE_LAST, NO_LAST], value=USE_LAST, label="Last-frame instruction",
                                             elem_id="last-mode")
                        instruction = gr.Dropdown(list(CONVERTERS), value="image", label="Turn the last frame into",
                                                  elem_id="instruction")
    with gr.Accordion("Engine and sampler", open=True):
        with gr.Row():
            engine = gr.Dropdown(_engine_choices(), value="auto", label="Engine", elem_id="engine")
            model = gr.Textbox(session.model or "", label="Model folder (generative engines)",
                               placeholder="none: the weight-free propagate engine", elem_id="model")
            prompt = gr.Textbox("", label="Prompt (generative engines)", elem_id="prompt")
        with gr.Row():
            tau = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="tau (share of steps that see the last frame)")
            strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="strength (1: pure generation)")
            steps = gr.Slider(1, 100, value=25, step=1, label="steps")
            guidance = gr.Slider(0.0, 15.0, value=0.0, step=0.5, label="guidance (0: the engine's own)")
            seed = gr.Number(0, precision=0, label="seed")
    run = gr.Button("Edit the video", variant="primary", elem_id="run-edit")
    with gr.Row():
        out_video = gr.Video(label="Edited video", interactive=False, height=320, elem_id="output-video")
        with gr.Column():
            out_sheet = gr.Image(label="Preview sheet", interactive=False, height=240, elem_id="output-sheet")
            out_file = gr.File(label="Download", interactive=False, elem_id="output-file")
            summary = gr.Markdown(elem_id="output-summary")

    editors = [first_editor, last_editor, first_src, last_src, first_auto, last_auto]
    video.change(_shown(session.load_video), video, [facts, start, end, *editors], api_name="load_video")
    sample.click(_shown(session.sample_clip), None, video, api_name="sample_clip")
    for slider in (start, end):  # dragged or typed; while one runs, only the latest waits
        slider.input(_shown(session.change_window), [video, start, end], editors, api_name=False,
                     trigger_mode="always_last", show_progress="minimal")
    for src, auto, opts, editor in ((first_src, first_auto, first_opts, first_editor),
                                    (last_src, last_auto, last_opts, last_editor)):
        auto.input(_shown(session.preview_edit), [src, auto, opts], editor, api_name=False)
        opts.submit(_shown(session.preview_edit), [src, auto, opts], editor, api_name=False)
    run.click(_shown(session.edit),
              [video, start, end, frames, size, first_editor, last_editor, last_mode, instruction, engine, model,
               prompt, tau, strength, steps, guidance, seed],
              [out_video, out_sheet, out_file, summary], api_name="edit", concurrency_id=JOBS)


def _generate_tab(session: _Session) -> None:
    """The Generate tab: prompt, first image, optional last image or sketch, output video."""
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox("", label="Prompt", lines=2, elem_id="gen-prompt")
            first = _checked(gr.Image(label="First frame", type="numpy", image_mode="RGB", sources=["upload"],
                                      height=300, elem_id="gen-first"))
        with gr.Column():
            last = _checked(gr.ImageEditor(
                label="Last frame (optional): upload an image or draw a sketch", type="numpy", format="png",
                sources=["upload"], canvas_size=(512, 320), layers=False, transforms=(), height=380,
                brush=gr.Brush(colors=SKETCH_COLOURS, default_color=SKETCH_COLOURS[0], default_size=6),
                eraser=gr.Eraser(default_size=16), elem_id="gen-last",
            ))
    with gr.Row():
        engine = gr.Dropdown(["auto", *generative_engines()], value="auto", label="Engine", elem_id="gen-engine")
        model = gr.Textbox(session.model or "", label="Model folder",
                           placeholder="a PixelDance, Wan2.1 FLF2V or LTX-Video folder", elem_id="gen-model")
        tau = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="tau")
        steps = gr.Slider(1, 100, value=25, step=1, label="steps", elem_id="gen-steps")
        guidance = gr.Slider(0.0, 15.0, value=0.0, step=0.5, label="guidance (0: the engine's own)",
                             elem_id="gen-guidance")
    with gr.Row():
        frames = gr.Number(0, precision=0, minimum=0, label="Frames (0: the model's default)", elem_id="gen-frames")
        fps = gr.Number(0, minimum=0, label="fps (0: the model's)", elem_id="gen-fps")
        size = gr.Textbox("", label="Size WxH", placeholder="from the first image, longer side 512",
                          elem_id="gen-size")
        seed = gr.Number(0, precision=0, label="seed")
    run = gr.Button("Generate", variant="primary", elem_id="run-generate")
    with gr.Row():
        out_video = gr.Video(label="Generated video", interactive=False, height=320, elem_id="gen-output")
        out_file = gr.File(label="Download", interactive=False)
    run.click(_shown(session.generate),
              [prompt, first, last, model, frames, fps, size, tau, steps, guidance, seed, engine],
              [out_video, out_file], api_name="generate", concurrency_id=JOBS)


def _gallery_tab(session: _Session) -> None:
    """The Gallery tab: every weight-free edit and converter applied to one image."""
    with gr.Row():
        with gr.Column(scale=1):
            image = _checked(gr.Image(label="Image", type="numpy", image_mode="RGB", sources=["upload"], height=300,
                                      elem_id="gallery-image"))
            show = gr.Button("Show every edit", variant="primary", elem_id="run-gallery")
            gr.Markdown("Each tile is labelled with the spec to type after `--first-edit` / `--last-edit`, "
                        "or the `--instruction` kind.")
        with gr.Column(scale=3):
            tiles = gr.Gallery(label="Edits and converters", columns=5, height=560, object_fit="contain",
                               elem_id="gallery-tiles")
    show.click(_shown(session.gallery), image, tiles, api_name="gallery")
    image.upload(_shown(session.gallery), image, tiles, api_name=False)


def build_app(model: str | os.PathLike | None = None, workdir: str | os.PathLike | None = None, *,
              max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB) -> gr.Blocks:
    """Build the pdedit web app (not started: see `launch_app`).

    Args:
        model: default model folder for the pixeldance engine and the Generate tab (None: propagate).
        workdir: the folder for uploads and outputs; None makes a temporary one, removed at exit.
            gradio's upload cache is pointed there (GRADIO_TEMP_DIR), so build one app per process.
        max_upload_mb: uploads larger than this get a message instead of being processed.

    Returns:
        the gradio Blocks, with its queue set to run one job at a time.
    """
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="pdedit-app-")
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    folder = Path(workdir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # gradio reads this when components and the server are created: uploads land in our folder.
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    session = _Session(folder, str(model) if model else None, int(max_upload_mb))
    with gr.Blocks(title="pdedit", analytics_enabled=False) as app:
        gr.Markdown("# pdedit\nEdit a video by editing its first and last frames "
                    "([PixelDance](https://arxiv.org/abs/2311.10982)); runs locally.")
        with gr.Tabs():
            with gr.Tab("Edit", id="edit"):
                _edit_tab(session)
            with gr.Tab("Generate", id="generate"):
                _generate_tab(session)
            with gr.Tab("Gallery", id="gallery"):
                _gallery_tab(session)
    # One job at a time: the editor uses every core; later users wait and see their position.
    app.queue(default_concurrency_limit=1)
    app.pdedit_workdir = folder
    app.pdedit_max_upload_mb = session.max_upload_mb
    return app


def launch_app(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True,
               quiet: bool = False) -> str:
    """Start a built app on host:port (blocking until Ctrl-C unless ``block`` is False); returns its URL."""
    mb = getattr(app, "pdedit_max_upload_mb", DEFAULT_MAX_UPLOAD_MB)
    try:
        _, url, _ = app.launch(
            server_name=host, server_port=port, prevent_thread_lock=not block, max_file_size=mb * 2**20,
            show_error=False, share=False, ssr_mode=False, run_history=False, quiet=quiet, inbrowser=False,
            allowed_paths=[str(getattr(app, "pdedit_workdir", tempfile.gettempdir()))],
        )
    except OSError:
        raise BadInput(f"cannot listen on {host}:{port} (the port is in use or the address is not this "
                       f"machine's): pick another with --port or --host") from None
    return url


def serve(model: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 7860,
          max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB) -> None:
    """Run the app until Ctrl-C (or SIGTERM), with uploads and outputs in a temporary folder removed afterwards."""

    def stop(signum, frame):
        raise KeyboardInterrupt  # gradio's wait loop closes the server on it; then the folder goes

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    with tempfile.TemporaryDirectory(prefix="pdedit-app-") as workdir:
        app = build_app(model, workdir, max_upload_mb=max_upload_mb)
        try:
            launch_app(app, host, port, block=True)
        finally:
            app.close()
