"""The `pdedit` command line: a thin layer over the public functions.

Every command follows `pdedit VERB INPUT [options] -o OUTPUT`; progress goes to stderr, results to
stdout. A `PdeditError` becomes one line on stderr and exit code 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from pdedit.errors import PdeditError

SIZE_HELP = "output size WxH (multiples of 8), e.g. 512x320"


class PdeditGroup(click.Group):
    """A click group that turns PdeditError into one clear line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PdeditError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {err}", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=PdeditGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("-v", "--verbose", is_flag=True, help="Log what the library does (to stderr).")
@click.version_option(package_name="pdedit")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """pdedit: zero-shot video editing and sketch-conditioned generation with PixelDance."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")


# ---- commands are registered below, one section per step of the data flow ----


# ---- video: sample, info, frames (pdedit.video) ----


@cli.command("sample", epilog="\b\nExample:\n  pdedit sample clip.mp4 --seconds 3 --size 512x320")
@click.argument("output")
@click.option("--seconds", type=float, default=2.0, show_default=True, help="Clip length in seconds.")
@click.option("--fps", type=float, default=12.0, show_default=True, help="Frames per second.")
@click.option("--size", default="320x240", show_default=True, help=SIZE_HELP)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def sample_cmd(output: str, seconds: float, fps: float, size: str, force: bool) -> None:
    """Write a short real-image clip to OUTPUT (an .mp4) without any input.

    A slow pan and zoom over the astronaut photo that scikit-image ships, so there is always a
    video to try the other commands on.

    """
    from pdedit.video import check_output, make_sample, parse_size

    wh = parse_size(size)
    check_output(output, force=force)
    click.echo(f"writing {round(seconds * fps)} frames of {wh[0]}x{wh[1]} at {fps:g} fps", err=True)
    click.echo(str(make_sample(output, seconds=seconds, fps=fps, size=wh, force=force)))


@cli.command("info", epilog="\b\nExample:\n  pdedit sample clip.mp4 && pdedit info clip.mp4 --json")
@click.argument("video")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
def info_cmd(video: str, as_json: bool) -> None:
    """Show a video's size, fps, true frame count, duration, codecs and audio.

    """
    import dataclasses
    import json

    from pdedit.video import probe

    info = probe(video)
    fields = {k: str(v) if k == "path" else v for k, v in dataclasses.asdict(info).items()}
    if as_json:
        click.echo(json.dumps(fields))
        return
    fields["size"] = f"{info.width}x{info.height}"
    fields["fps"] = f"{info.fps:g}"
    fields["duration"] = f"{info.duration:.2f} s"
    fields["audio"] = info.audio_codec or "none"
    for key in ("path", "size", "fps", "frame_count", "duration", "video_codec", "audio", "decoder"):
        click.echo(f"{key:12s} {fields[key]}")


@cli.command("frames", epilog="\b\nExample:\n  pdedit sample clip.mp4 && "
             "pdedit frames clip.mp4 --out frames --count 4 --sheet sheet.png")
@click.argument("video")
@click.option("--out", "out_dir", required=True,
              help="Folder for the PNGs (created if missing; its parent must exist).")
@click.option("--count", type=int, default=None, help="N evenly spaced frames [default: first and last].")
@click.option("--start", type=float, default=None, help="Window start in seconds [default: 0].")
@click.option("--end", type=float, default=None, help="Window end in seconds [default: the end].")
@click.option("--size", default=None, help=SIZE_HELP + " [default: the video's own size]")
@click.option("--resize", type=click.Choice(["crop", "pad", "fit"]), default="crop", show_default=True,
              help="How to reach --size: cover and centre-crop, letterbox, or stretch.")
@click.option("--sheet", default=None, help="Also write a labelled preview sheet (PNG) of the frames here.")
@click.option("--force", is_flag=True, help="Replace existing PNGs.")
def frames_cmd(video: str, out_dir: str, count: int | None, start: float | None, end: float | None,
               size: str | None, resize: str, sheet: str | None, force: bool) -> None:
    """Export frames of VIDEO as PNGs named frame_<index>.png (source frame index).

    The first and last frame of the window, or --count frames evenly spaced: the starting point
    of a manual edit.

    """
    from pathlib import Path

    from pdedit.video import Clip, Window, check_output, parse_size, plan_window, preview_sheet, probe, save_image

    # 1. Check everything before writing anything.
    info = probe(video)
    window = plan_window(info, start, end, num_frames=count or 2)
    wh = parse_size(size) if size else (info.width, info.height)
    out = Path(out_dir)
    indices = tuple(sorted(set(window.indices)))
    targets = [out / f"frame_{i:05d}.png" for i in indices]
    if out.is_dir():
        for target in targets:
            check_output(target, inputs=[video], force=force)
    else:
        check_output(out, inputs=[video])
    if sheet:
        check_output(sheet, inputs=[video], force=force)
    # 2. Decode and write.
    click.echo(f"decoding {len(indices)} frames of {info.path.name} ({info.decoder})", err=True)
    clip = Clip(info, Window(window.start, window.end, indices, window.fps), wh, resize)
    out.mkdir(exist_ok=True)
    frames = []
    for target, frame in zip(targets, clip):
        click.echo(str(save_image(target, frame)))
        if sheet:
            frames.append(frame)
    if sheet:
        click.echo(str(preview_sheet(frames, sheet, labels=[f"#{i}" for i in indices])))


# ---- app: the local web app (pdedit.app, optional extra `app`) ----


@cli.command("app", epilog="\b\nExample:\n  pip install 'pdedit[app]' && pdedit app --port 7860\n"
                           "  then open http://127.0.0.1:7860 in a browser")
@click.option("--model", default=None, help="Model folder for the generative engines (pixeldance, wan, ltx) and the Generate "
                                            "tab [default: none; edits use the weight-free propagate engine].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 lets other machines on the network use the app.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port to listen on.")
@click.option("--max-upload-mb", type=click.IntRange(1), default=500, show_default=True,
              help="Largest upload accepted, in MB.")
def app_cmd(model: str | None, host: str, port: int, max_upload_mb: int) -> None:
    """Start the local web app: edit videos in a browser (upload, paint on keyframes, watch the result).

    Uploads and outputs live in a temporary folder that is removed when the app stops (Ctrl-C).
    Jobs run one at a time; later ones wait in a queue that shows their position.
    """
    from pdedit.errors import Unsupported

    try:
        import gradio  # noqa: F401  (only to check that the extra is installed)
    except ImportError:
        raise Unsupported("the web app needs gradio, which is not installed: pip install 'pdedit[app]'") from None
    from pdedit.app import serve

    click.echo(f"pdedit app on http://{host}:{port} (Ctrl-C stops it and removes its uploads)", err=True)
    serve(model=model, host=host, port=port, max_upload_mb=max_upload_mb)


# ---- instructions: autoedit, annotate, gallery (pdedit.instructions) ----

def _check_image_output(output: str, inputs: tuple, force: bool) -> None:
    """BadInput unless OUTPUT is a PNG/JPEG path that may be written."""
    from pathlib import Path

    from pdedit.errors import BadInput
    from pdedit.video import check_output

    if Path(output).suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise BadInput(f"output {output} must end in .png or .jpg")
    check_output(output, inputs=inputs, force=force)


@cli.command("autoedit", epilog="\b\nExamples:\n"
             "  pdedit autoedit photo.png 'instruct:make it winter' --edit-model ip2p/ -o winter.png\n"
             "  pdedit autoedit photo.png auto:sepia -o sepia.png\n"
             "  pdedit autoedit photo.png auto:hue:degrees=40 -o hue.png")
@click.argument("image")
@click.argument("spec")
@click.option("-o", "--output", required=True, help="Edited image (.png or .jpg).")
@click.option("--edit-model", default=None,
              help="Local diffusers folder for instruct: (InstructPix2Pix) or img2img: (Stable Diffusion).")
@click.option("--steps", type=click.IntRange(1), default=20, show_default=True, help="Steps of learned edits.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of learned edits.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def autoedit_cmd(image: str, spec: str, output: str, edit_model: str | None, steps: int, seed: int,
                 force: bool) -> None:
    """Edit IMAGE with SPEC: auto:<name>[:key=value,...], instruct:<text> or img2img:<text>.

    Built-in edits (no weights): cartoon, stylize, pencil, sepia, night, hue, posterize,
    whitebalance, contrast, colortransfer (ref=PATH). `pdedit gallery` shows them all.
    """
    from pdedit.instructions import apply_edit, parse_edit_spec
    from pdedit.video import load_image, save_image

    # 1. Check everything before the work.
    parsed = parse_edit_spec(spec)
    _check_image_output(output, (image,), force)
    frame = load_image(image)
    # 2. Edit and write.
    edited = apply_edit(frame, parsed, edit_model=edit_model, steps=steps, seed=seed, progress=True)
    click.echo(str(save_image(output, edited)))


@cli.command("annotate", epilog="\b\nExamples:\n"
             "  pdedit annotate photo.png --kind pose --annotator-dir annotators/ -o pose.png\n"
             "  pdedit annotate photo.png --kind boxes --boxes boxes.json -o boxes.png\n"
             "  pdedit annotate clip.mp4 --kind boxes --method motion -o moving.png\n"
             "  pdedit annotate photo.png --kind sketch -o sketch.png")
@click.argument("image")
@click.option("--kind", type=click.Choice(["sketch", "pose", "boxes", "depth"]), required=True,
              help="Instruction kind to make.")
@click.option("--method", default=None, help="sketch: xdog (default), canny, silhouette, hed, pidinet, lineart; pose: openpose "
                                             "(default), openpose_full, mediapipe; boxes: json, motion, faces; "
                                             "depth: midas.")
@click.option("--boxes", "boxes_file", default=None,
              help="JSON list of boxes {label, x0, y0, x1, y1, color?} in pixels of IMAGE.")
@click.option("--annotator-dir", default=None,
              help="Folder with controlnet-aux weight files (hed, pidinet, lineart, openpose, midas).")
@click.option("--frames", type=click.IntRange(3), default=16, show_default=True,
              help="When IMAGE is a video: frames sampled for --method motion (its last frame is annotated).")
@click.option("-o", "--output", required=True, help="Instruction image (.png or .jpg).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def annotate_cmd(image: str, kind: str, method: str | None, boxes_file: str | None, annotator_dir: str | None,
                 frames: int, output: str, force: bool) -> None:
    """Turn IMAGE (or the last frame of a video) into a sketch, pose, boxes or depth instruction.

    Sketches are black lines on white; poses, boxes and depth maps are drawn on black, as
    PixelDance's last-frame instructions. Weight-free: sketch xdog/canny, boxes json/motion/faces.
    """
    from pathlib import Path

    from pdedit.instructions import convert
    from pdedit.video import VIDEO_SUFFIXES, load_image, open_clip, save_image

    # 1. Check everything before the work.
    _check_image_output(output, (image,), force)
    video_frames = None
    if Path(image).suffix.lower() in VIDEO_SUFFIXES:
        video_frames = open_clip(image, num_frames=frames).frames()
        frame = video_frames[-1]
    else:
        frame = load_image(image)
    # 2. Convert and write.
    out = convert(frame, kind, method=method, annotator_dir=annotator_dir, boxes=boxes_file,
                  video_frames=video_frames)
    click.echo(str(save_image(output, out)))


@cli.command("gallery", epilog="\b\nExample:\n  pdedit gallery photo.png -o gallery.png")
@click.argument("image")
@click.option("-o", "--output", required=True, help="Sheet (.png).")
@click.option("--ref", default=None, help="Reference image for the colortransfer tile [default: no such tile].")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def gallery_cmd(image: str, output: str, ref: str | None, force: bool) -> None:
    """One labelled sheet of IMAGE under every weight-free edit and converter, to pick one by eye.

    Each tile is labelled with the spec or the annotate options that make it.
    """
    import cv2

    from pdedit.instructions import gallery
    from pdedit.video import load_image, preview_sheet

    # 1. Check everything before the work.
    _check_image_output(output, (image, ref), force)
    frame = load_image(image)
    if ref is not None:
        load_image(ref)
    scale = 512 / max(frame.shape[:2])
    if scale < 1:  # tiles are thumbnails: edit at most 512 px wide, and fast
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # 2. Every edit, then every converter.
    tiles, labels = gallery(frame, ref)
    columns = 4
    click.echo(str(preview_sheet(tiles, output, columns=columns, labels=labels, max_frames=len(tiles))))


def _index_pairs(values: tuple[str, ...], option: str, convert: Callable[[str], Any]) -> dict[int, Any]:
    """Parse repeated ``IDX=VALUE`` options into {IDX: convert(VALUE)}; BadInput naming the bad one."""
    from pdedit.errors import BadInput

    pairs: dict[int, Any] = {}
    for text in values:
        index, sep, value = text.partition("=")
        try:
            if not sep or not value:
                raise ValueError(text)
            pairs[int(index)] = convert(value)
        except ValueError:
            raise BadInput(f"{option} {text!r}: expected IDX=VALUE, e.g. {option} 12="
                           f"{'key12.png' if convert is str else '0.5'}") from None
    return pairs


@cli.command("edit", epilog="\b\nExamples:\n  pdedit sample clip.mp4\n"
             "  pdedit edit clip.mp4 --first-edit auto:sepia --last-edit auto:sepia -o edited.mp4 --preview sheet.png\n"
             "  pdedit edit clip.mp4 --first-edit auto:night -o night.mp4 --compare night_vs_source.mp4\n"
             "  pdedit frames clip.mp4 --out keys   # edit keys/*.png in any painter, then:\n"
             "  pdedit edit clip.mp4 --first-edit first.png --last-edit last.png -o edited.mp4")
@click.argument("video")
@click.option("--first-edit", required=True,
              help="Edited first frame: an image (PNG/JPEG) or an edit spec such as auto:sepia.")
@click.option("--last-edit", default=None, help="Edited last frame (same forms) [default: none, basic mode].")
@click.option("-o", "--output", required=True, help="Output video (.mp4).")
@click.option("--engine", default="auto", show_default=True,
              help="auto | propagate | pixeldance | wan | ltx (auto: the --model folder's kind, else propagate).")
@click.option("--model", default=None, help="Model folder for a generative engine (e.g. from `pdedit model init`, "
              "or a downloaded Wan2.1 FLF2V / LTX-Video diffusers folder).")
@click.option("--start", type=float, default=None, help="Window start in seconds [default: 0].")
@click.option("--end", type=float, default=None, help="Window end in seconds [default: the end].")
@click.option("--frames", type=int, default=None,
              help="Frames to make, evenly over the window [default: propagate every frame; a model its clip length].")
@click.option("--fps", type=float, default=None, help="Sample the window at this frame rate instead.")
@click.option("--size", default=None,
              help=SIZE_HELP + " [default: propagate the video's own size; a model 512 on the long side]")
@click.option("--resize", type=click.Choice(["crop", "pad", "fit"]), default="crop", show_default=True,
              help="How frames and edit images reach --size: cover and centre-crop, letterbox, or stretch.")
@click.option("--prompt", default="", help="Text instruction (generative engines).")
@click.option("--negative-prompt", default="", help="Text to steer away from (generative engines).")
@click.option("--tau", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Fraction of the denoising steps that see the last frame (PixelDance).")
@click.option("--strength", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="1 = generate from noise; lower starts from the noised source clip and keeps its motion.")
@click.option("--steps", type=click.IntRange(1), default=25, show_default=True, help="Denoising steps.")
@click.option("--guidance", type=click.FloatRange(0), default=None,
              help="Classifier-free guidance scale [default: the engine's own: 7.5 pixeldance, 5 wan, 3 ltx].")
@click.option("--image-noise", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Noise level on the image instructions (PixelDance c_image perturbation).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--instruction", type=click.Choice(["image", "sketch", "pose", "boxes", "depth"]), default="image",
              show_default=True, help="Turn the last edit into this kind of instruction (for tuned models).")
@click.option("--edit-model", default=None, help="Local model folder for instruct:/img2img: edit specs.")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
              help="x264 quality of the output (lower is better and larger).")
@click.option("--no-audio", is_flag=True, help="Do not carry the source audio.")
@click.option("--preview", default=None, help="Also write a PNG sheet of output frames here.")
@click.option("--force", is_flag=True, help="Replace OUTPUT (and the preview) if they exist.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object (for scripts).")
@click.option("--keyframe", "keyframes", multiple=True, metavar="IDX=IMG",
              help="A further edited frame at position IDX of the output clip (image or edit spec); repeatable "
                   "(ltx and propagate engines).")
@click.option("--keyframe-tau", "keyframe_taus", multiple=True, metavar="IDX=TAU",
              help="Fraction of the steps that see keyframe IDX (the last frame's position too) [default: --tau]; "
                   "repeatable (ltx, wan).")
@click.option("--offload", type=click.Choice(["auto", "none", "model", "sequential"]), default=None,
              help="GPU memory saving of the wan/ltx engines: model = enable_model_cpu_offload, sequential = "
                   "per layer; auto = the fastest that fits the VRAM estimate [default: auto].")
@click.option("--compare", "compare_path", default=None, metavar="OUT",
              help="Also write a labelled side-by-side video of the source window and the edit here (.mp4).")
@click.option("--spec-mode", type=click.Choice(["auto", "per-frame", "keyframes"]), default="auto", show_default=True,
              help="When --first-edit and --last-edit are the same auto: spec (propagate engine): per-frame applies it "
                   "to every frame, smoothed along the motion; keyframes carries the two edited keyframes; auto = "
                   "per-frame. The command says which it did.")
def edit_cmd(video: str, first_edit: str, last_edit: str | None, output: str, engine: str, model: str | None,
             start: float | None, end: float | None, frames: int | None, fps: float | None, size: str | None,
             resize: str, prompt: str, negative_prompt: str, tau: float, strength: float, steps: int,
             guidance: float, image_noise: float, seed: int, instruction: str, edit_model: str | None, crf: int,
             no_audio: bool, preview: str | None, force: bool, as_json: bool, keyframes: tuple[str, ...],
             keyframe_taus: tuple[str, ...], offload: str | None, compare_path: str | None,
             spec_mode: str) -> None:
    """Edit VIDEO from its edited first (and last) frame.

    With no --model the weight-free propagate engine makes every frame what the keyframes' edit
    would have made of it: colour and screen-position changes (grades, vignettes, overlays) are
    applied at each frame, marks on objects move with them, and nothing crosses a scene cut. With
    a PixelDance model the clip is regenerated from the edited keyframes (zero-shot editing,
    arXiv 2311.10982). Edit images are edited frames of VIDEO (see `pdedit frames`); an aspect
    ratio off by more than 2%, or an image that is not an edit of its frame, is an error.

    Temporary disk (propagate): about 20 bytes per pixel of its 384-pixel flow resolution per
    frame of the longest stretch between two keyframes (1.7 MB per frame at 16:9; 2.3 GB for 1394
    frames with two keyframes, 85 MB with a --keyframe every 50 frames), removed at the end.
    """
    import json

    from pdedit.editor import edit_video
    from pdedit.video import parse_size

    result = edit_video(
        video, first_edit, last_edit, output, engine=engine, model=model, start=start, end=end, frames=frames,
        fps=fps, size=parse_size(size) if size else None, resize=resize, prompt=prompt,
        negative_prompt=negative_prompt, tau=tau, strength=strength, steps=steps, guidance=guidance, seed=seed,
        image_noise=image_noise, instruction=instruction, edit_model=edit_model, audio=not no_audio, crf=crf,
        preview=preview, force=force, progress=sys.stderr.isatty(),
        keyframes=_index_pairs(keyframes, "--keyframe", str),
        keyframe_tau=_index_pairs(keyframe_taus, "--keyframe-tau", float), offload=offload,
        report=lambda line: click.echo(line, err=True), compare=compare_path, spec_mode=spec_mode,
    )
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    t = result.timings
    click.echo(f"{result.engine}: {result.frames} frames, {result.size[0]}x{result.size[1]} at {result.fps:g} fps "
               f"({result.seconds:.2f} s{', with audio' if result.audio else ''}) in {t['total']:.1f} s", err=True)
    click.echo(str(result.output))
    if result.preview:
        click.echo(str(result.preview))
    if result.comparison:
        click.echo(str(result.comparison))


@cli.command("compare", epilog="\b\nExample:\n  pdedit sample clip.mp4 && pdedit edit clip.mp4 --first-edit auto:sepia "
             "--last-edit auto:sepia -o sepia.mp4\n  pdedit compare clip.mp4 sepia.mp4 -o side_by_side.mp4 "
             "--label source --label sepia")
@click.argument("videos", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Output video (.mp4).")
@click.option("--label", "labels", multiple=True, help="Caption of each video, in order [default: the file names].")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def compare_cmd(videos: tuple[str, ...], output: str, labels: tuple[str, ...], force: bool) -> None:
    """Write a labelled side-by-side video of VIDEOS (a source and its edits; a grid for more than three).

    The tiles are time-aligned on the first video, which also gives the fps, the tile height and the audio.
    """
    from pdedit.compare import write_comparison

    click.echo(str(write_comparison(videos, output, labels=labels or None, force=force,
                                    progress=sys.stderr.isatty())))


# ---- PixelDance models and generation (pdedit.models, pdedit.pipeline, pdedit.story) ----

SCHEDULER_NAMES = ["ddim", "dpm++", "euler", "unipc"]  # pdedit.pipeline.SCHEDULERS, without importing torch
TINY_KINDS = ["pixeldance", "wan", "ltx"]  # pdedit.model_init.TINY_BUILDERS, without importing torch


@cli.group("model")
def model_group() -> None:
    """Make and inspect PixelDance model folders (diffusers format, safetensors)."""


@model_group.command("init", epilog="\b\nExamples:\n  pdedit model init --tiny tiny-model\n"
                     "  pdedit model init --tiny --kind wan tiny-wan   # then: pdedit generate --model tiny-wan ...\n"
                     "  pdedit model init --from-t2v ./text-to-video-ms-1.7b pixeldance-init")
@click.argument("output")
@click.option("--tiny", is_flag=True, help="A tiny random model (seconds to build; for tests and trying things).")
@click.option("--kind", type=click.Choice(TINY_KINDS), default="pixeldance", show_default=True,
              help="With --tiny: the kind of model folder, i.e. the engine that runs it (wan: Wan2.1 FLF2V classes, "
                   "ltx: LTX-Video classes).")
@click.option("--from-t2v", "source", default=None, metavar="SRC",
              help="A diffusers text-to-video folder or hub id: conv_in widened to [z_t, c_image], new weights zero.")
@click.option("--frames", type=click.IntRange(2), default=None,
              help="Default frames of a PixelDance model [tiny: 8, t2v: 16].")
@click.option("--fps", type=click.IntRange(1), default=8, show_default=True, help="Default fps of a PixelDance model.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the tiny model's random weights.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def model_init_cmd(output: str, tiny: bool, kind: str, source: str | None, frames: int | None, fps: int, seed: int,
                   force: bool) -> None:
    """Write a new model folder to OUTPUT (diffusers format, safetensors).

    No PixelDance weights are public: --tiny gives random weights that run anywhere; --from-t2v
    starts from a text-to-video model (e.g. ModelScope) that behaves as before until fine-tuned with
    `python -m finetune`. --tiny --kind wan|ltx makes tiny random folders of the open models' classes,
    to try the wan and ltx engines without their download (their clips are noise).
    """
    from pathlib import Path

    from pdedit.errors import BadInput
    from pdedit.model_folder import save_folder

    if tiny == (source is not None):
        raise BadInput("give exactly one of --tiny or --from-t2v SRC (e.g. `pdedit model init --tiny tiny-model`)")
    if Path(output).exists() and not force:
        raise BadInput(f"{output} already exists: pass --force to replace it, or choose another folder")
    pixeldance = kind == TINY_KINDS[0]
    if not pixeldance and (frames or not tiny):
        raise BadInput(f"--kind {kind} makes a tiny model only, with the model's own clip length: drop "
                       f"{'--frames' if frames else '--from-t2v'}")
    from pdedit.model_init import build_tiny_model, convert_t2v_pipeline

    if tiny:
        pipe = build_tiny_model(kind, seed=seed)
        if pixeldance and frames:
            pipe.register_to_config(num_frames=frames)
    else:
        click.echo(f"converting {source}", err=True)
        pipe = convert_t2v_pipeline(source, num_frames=frames or 16, fps=fps)
    if pixeldance:
        pipe.register_to_config(fps=fps)
    save_folder(lambda tmp: pipe.save_pretrained(str(tmp), safe_serialization=True), output, force)
    click.echo(output)


@model_group.command("info", epilog="\b\nExample:\n  pdedit model init --tiny tiny-model && pdedit model info tiny-model")
@click.argument("model_dir")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
def model_info_cmd(model_dir: str, as_json: bool) -> None:
    """Show a model folder's components, parameter counts, default frames and size."""
    import json

    from pdedit.engines.pixeldance import load_pipeline

    pipe = load_pipeline(model_dir, device=None)  # counting parameters needs no GPU
    components = {}
    for name, module in pipe.components.items():
        params = sum(p.numel() for p in module.parameters()) if hasattr(module, "parameters") else None
        components[name] = {"class": type(module).__name__, "parameters": params}
    w, h = pipe.default_size
    info = {
        "path": str(model_dir),
        "components": components,
        "frames": pipe.config.num_frames,
        "fps": pipe.config.fps,
        "size": f"{w}x{h}",
        "latent_channels": pipe.unet.config.out_channels,
        "unet_in_channels": pipe.unet.config.in_channels,
        "vae_scale_factor": pipe.vae_scale_factor,
    }
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"{model_dir}: PixelDance, {info['frames']} frames of {info['size']} at {info['fps']} fps, "
               f"latents {info['latent_channels']} ch (UNet in {info['unet_in_channels']} = [z_t, c_image])")
    for name, c in components.items():
        count = f"{c['parameters']:,} parameters" if c["parameters"] is not None else ""
        click.echo(f"  {name:<13} {c['class']:<28} {count}")


def _sampling_options(func):
    """The sampler options shared by `generate` and `story` (same names, same meaning)."""
    options = [
        click.option("--model", required=True,
                     help="Model folder: PixelDance (`pdedit model init`), Wan2.1 FLF2V or LTX-Video."),
        click.option("--engine", default="auto", show_default=True,
                     help="auto | pixeldance | wan | ltx (auto: the --model folder's kind, from its model_index.json)."),
        click.option("--offload", type=click.Choice(["auto", "none", "model", "sequential"]), default=None,
                     help="GPU memory saving of the wan/ltx engines [default: auto, the fastest that fits]."),
        click.option("--negative-prompt", default=None, help="Text for the unconditional branch [default: empty]."),
        click.option("--tau", type=click.FloatRange(0, 1), default=None,
                     help="Fraction of the steps that see the last frame [default: 1.0]."),
        click.option("--steps", type=click.IntRange(1), default=None, help="Denoising steps [default: 25]."),
        click.option("--guidance", type=click.FloatRange(0), default=None,
                     help="Text guidance scale; <= 1 disables guidance [default: the engine's own: 7.5 pixeldance, "
                          "5 wan, 3 ltx]."),
        click.option("--frames", type=click.IntRange(2), default=None,
                     help="Frames per clip [default: the model's: 81 wan, 121 ltx, a PixelDance folder's own]."),
        click.option("--fps", type=click.FloatRange(0, min_open=True), default=None,
                     help="Frames per second of the video [default: the model's: 16 wan, 25 ltx]."),
        click.option("--size", default=None, help=SIZE_HELP + " [default: the model's size, or from the first image]"),
        click.option("--seed", type=int, default=None, help="Random seed [default: 0]."),
        click.option("--scheduler", type=click.Choice(SCHEDULER_NAMES), default=None,
                     help="Sampler of the pixeldance engine [default: the model's, DDIM]."),
        click.option("--image-noise", type=click.FloatRange(0), default=None,
                     help="Noise added to the image instructions [default: 0]."),
        click.option("--preview", default=None, help="Also write a labelled preview sheet (PNG) of the frames here."),
        click.option("--force", is_flag=True, help="Replace OUTPUT (and the preview) if they exist."),
        click.option("-o", "--output", required=True, help="Output video (.mp4)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command("generate", epilog="\b\nExamples:\n  pdedit model init --tiny tiny-model\n"
             "  pdedit sample clip.mp4 && pdedit frames clip.mp4 --out keys\n"
             "  pdedit generate --model tiny-model --prompt 'a slow pan' --first keys/frame_00000.png -o out.mp4\n"
             "  pdedit generate --model tiny-model --prompt 'a slow pan' --first a.png --last b.png --tau 0.5 -o magic.mp4\n"
             "  pdedit model init --tiny --kind ltx tiny-ltx && pdedit generate --model tiny-ltx --prompt 'a slow pan' "
             "--first keys/frame_00000.png --frames 9 --size 64x48 --steps 2 -o ltx.mp4\n"
             "  pdedit generate --model ./Wan2.1-FLF2V-14B-720P-diffusers --prompt 'a slow pan' --first a.png "
             "--last b.png --tau 0.6 --size 1280x720 -o wan.mp4")
@click.option("--prompt", required=True, help="Text instruction.")
@click.option("--first", "first_path", required=True, help="First-frame instruction (image); cropped to --size.")
@click.option("--last", "last_path", default=None, help="Last-frame instruction (image): magic mode [default: none].")
@_sampling_options
def generate_cmd(prompt: str, first_path: str, last_path: str | None, engine: str, offload: str | None, model: str,
                 negative_prompt: str | None, tau: float | None, steps: int | None, guidance: float | None,
                 frames: int | None, fps: float | None, size: str | None, seed: int | None, scheduler: str | None,
                 image_noise: float | None, preview: str | None, force: bool, output: str) -> None:
    """Generate a clip from a prompt and a first frame (basic mode), optionally a last frame (magic mode).

    Runs any generative engine (pixeldance, wan, ltx): auto picks it from the --model folder.
    """
    from pdedit.generation import generate_video, open_generator
    from pdedit.video import check_output, load_image, parse_size, preview_sheet, write_video

    # 1. Check everything before the work.
    inputs = [p for p in (first_path, last_path) if p]
    wh = parse_size(size) if size else None
    check_output(output, inputs=inputs, force=force)
    if preview:
        check_output(preview, inputs=[*inputs, output], force=force)
    first = load_image(first_path)
    last = load_image(last_path) if last_path else None
    gen = open_generator(engine, model, offload=offload, scheduler=scheduler)
    # 2. Generate and write.
    job = gen.job(first, last, size=wh, prompt=prompt, negative_prompt=negative_prompt, tau=tau, steps=steps,
                  guidance=guidance, frames=frames, fps=fps, seed=seed, image_noise=image_noise)
    video = generate_video(job, gen.engine, progress=sys.stderr.isatty())
    write_video(output, video, job.fps, force=force, inputs=inputs)
    if preview:
        preview_sheet(video, preview)
    click.echo(output)


@cli.command("story", epilog="\b\nExample (story.yaml beside start.png):\n"
             "  first: start.png\n  shots:\n    - prompt: a boat drifts left\n      last: left.png\n"
             "    - prompt: the boat sinks\n\n"
             "  pdedit story story.yaml --model tiny-model -o story.mp4")
@click.argument("storyboard")
@click.option("--first", "first_path", default=None,
              help="First-frame instruction of shot 1 [default: the storyboard's 'first'].")
@_sampling_options
def story_cmd(storyboard: str, first_path: str | None, engine: str, offload: str | None, model: str,
              negative_prompt: str | None, tau: float | None, steps: int | None, guidance: float | None,
              frames: int | None, fps: float | None, size: str | None, seed: int | None, scheduler: str | None,
              image_noise: float | None, preview: str | None, force: bool, output: str) -> None:
    """Generate a long video from a storyboard YAML: shots chained by their last frames.

    The last generated frame of each shot is the first-frame instruction of the next. Options given
    here override the storyboard's settings (size, frames, fps, steps, guidance, tau, image_noise,
    seed, negative_prompt); a shot's own frames / tau / seed override both. Any generative engine
    (pixeldance, wan, ltx) runs it.
    """
    from pathlib import Path

    from pdedit.errors import BadInput
    from pdedit.generation import open_generator
    from pdedit.story import generate_long, load_storyboard, with_first
    from pdedit.video import check_output, load_image, parse_size, preview_sheet, write_video

    # 1. Check everything before the work.
    board = load_storyboard(storyboard)
    if first_path:
        board = with_first(board, load_image(first_path), Path(first_path))
    if board.first is None:
        raise BadInput(f"storyboard {storyboard} has no 'first' image: add `first: image.png` or pass --first")
    inputs = [storyboard, *board.inputs]
    check_output(output, inputs=inputs, force=force)
    if preview:
        check_output(preview, inputs=[*inputs, output], force=force)
    given = {"size": parse_size(size) if size else None, "frames": frames, "fps": fps, "steps": steps,
             "guidance": guidance, "tau": tau, "image_noise": image_noise, "negative_prompt": negative_prompt,
             "seed": seed}
    settings = {k: v if v is not None else board.settings.get(k) for k, v in given.items()}
    gen = open_generator(engine, model, offload=offload, scheduler=scheduler)
    # 2. Generate shot by shot, streaming into the writer.
    fps_out = settings.pop("fps") or gen.choice.fps
    video = []

    def keep(frames_in):
        for frame in frames_in:
            video.append(frame)
            yield frame

    frames_iter = generate_long(gen, board.shots, board.first, progress=sys.stderr.isatty(), **settings)
    write_video(output, keep(frames_iter) if preview else frames_iter, fps_out, force=force, inputs=inputs)
    if preview:
        preview_sheet(video, preview)
    click.echo(output)


# ---- eval: measure edits and models (pdedit.evaluate) ----


@cli.group("eval")
def eval_group() -> None:
    """Measure edits and models."""


@eval_group.command("edit", epilog="\b\nExample:\n  pdedit sample clip.mp4 --seconds 1 --size 160x120\n"
                    "  pdedit edit clip.mp4 --first-edit auto:sepia --last-edit auto:sepia -o sepia.mp4\n"
                    "  pdedit eval edit clip.mp4 sepia.mp4 --oracle auto:sepia --plot frames.png --compare side.mp4")
@click.argument("source")
@click.argument("edited", nargs=-1, required=True)
@click.option("--first-edit", default=None, help="The edited first frame the edits were given (image or spec).")
@click.option("--last-edit", default=None, help="The edited last frame the edits were given (image or spec).")
@click.option("--oracle", default=None, metavar="auto:NAME",
              help="Also score every frame against this auto: edit applied per frame (and use it for missing "
                   "--first-edit/--last-edit).")
@click.option("--start", type=float, default=None, help="Source window start in seconds, as given to edit.")
@click.option("--end", type=float, default=None, help="Source window end in seconds, as given to edit.")
@click.option("--fps", type=float, default=None, help="The --fps given to edit, if any.")
@click.option("--resize", type=click.Choice(["crop", "pad", "fit"]), default="crop", show_default=True,
              help="How source frames and edit images were fitted to the edited size.")
@click.option("--plot", default=None, help="Also write a PNG plot of the per-frame figures here.")
@click.option("--compare", "compare_path", default=None, metavar="OUT.mp4",
              help="Also write the labelled side-by-side video of the source window and the edited versions.")
@click.option("--force", is_flag=True, help="Replace the plot and the comparison video if they exist.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
def eval_edit_cmd(source: str, edited: tuple[str, ...], first_edit: str | None, last_edit: str | None,
                  oracle: str | None, start: float | None, end: float | None, fps: float | None, resize: str,
                  plot: str | None, compare_path: str | None, force: bool, as_json: bool) -> None:
    """Score edited versions of SOURCE: keyframe PSNR/SSIM, warping error along the source's flow, flow EPE.

    Each EDITED clip is compared with the source window sampled at its own frame count and size. The
    warping error is also given as a ratio to the source's own (1.0 = as steady as the source); flow
    EPE (pixels) says how much of the source's motion the edit kept.
    """
    import json

    from pathlib import Path

    from pdedit.errors import BadInput
    from pdedit.evaluate.edit import evaluate_edits, format_table, plot_per_frame, write_edit_comparison
    from pdedit.video import check_output

    if plot:
        if Path(plot).suffix.lower() != ".png":
            raise BadInput(f"--plot {plot} must end in .png")
        check_output(plot, inputs=[source, *edited], force=force)
    if compare_path:
        if Path(compare_path).suffix.lower() != ".mp4":
            raise BadInput(f"--compare {compare_path} must end in .mp4")
        if plot and Path(plot).resolve() == Path(compare_path).resolve():
            raise BadInput(f"--compare {compare_path} is the --plot file: give each its own name")
        check_output(compare_path, inputs=[source, *edited], force=force)
    report = evaluate_edits(source, list(edited), first_edit=first_edit, last_edit=last_edit, oracle=oracle,
                            start=start, end=end, fps=fps, resize=resize, progress=sys.stderr.isatty())
    if plot:
        plot_per_frame(report, plot)
    if compare_path:
        write_edit_comparison(source, edited, compare_path, start=start, end=end, force=force,
                              progress=sys.stderr.isatty())
    click.echo(json.dumps(report.to_dict()) if as_json else format_table(report))
    if not as_json:
        for path in (plot, compare_path):
            if path:
                click.echo(path)


@eval_group.command("model", epilog="\b\nExample (extractor weights downloaded beforehand):\n"
                    "  pdedit eval model --model my-model --prompts prompts.csv --real ucf101/ "
                    "--i3d rgb_imagenet.pt \\\n    --inception pt_inception-2015-12-05-6726825d.pth "
                    "--c3d c3d_ucf101.safetensors --clip clip-vit-base-patch32/\n"
                    "  pdedit eval model --generated clips/ --real real/ --metrics fvd --i3d rgb_imagenet.pt")
@click.option("--real", required=True, help="Folder of real videos.")
@click.option("--model", default=None, help="PixelDance model folder that generates one clip per prompt row.")
@click.option("--generated", default=None, help="Folder of clips generated elsewhere (instead of --model).")
@click.option("--prompts", default=None,
              help="CSV: a prompt column, first/last instruction paths (for --model) or video file names (for "
                   "--generated, needed by clipsim).")
@click.option("--metrics", default="fvd,fid,is,clipsim", show_default=True, help="Comma-separated metrics.")
@click.option("--i3d", default=None, help="I3D (Kinetics-400) state dict for FVD.")
@click.option("--inception", default=None, help="FID Inception-v3 state dict for FID.")
@click.option("--c3d", default=None, help="C3D (UCF-101) state dict for IS.")
@click.option("--clip", "clip_dir", default=None, help="CLIP model folder (transformers) for CLIPSIM.")
@click.option("--frames", type=int, default=16, show_default=True, help="Frames per clip, real and generated.")
@click.option("--fps", type=float, default=None, help="Sample clips at this rate [default: each video's own].")
@click.option("--num-samples", type=int, default=None, help="At most this many clips of each set [default: all].")
@click.option("--fvd-size", type=int, default=224, show_default=True, help="Frame side the I3D sees.")
@click.option("--i3d-layer", type=click.Choice(["logits", "pool"]), default="logits", show_default=True,
              help="I3D output used for FVD.")
@click.option("--fid-size", type=int, default=299, show_default=True, help="Frame side the Inception sees.")
@click.option("--fid-frames", type=int, default=None, help="Frames per clip for FID [default: all].")
@click.option("--is-splits", type=int, default=10, show_default=True, help="Splits of the Inception Score.")
@click.option("--size", default=None, help="Size WxH of generated clips, multiples of 8 [default: the model's].")
@click.option("--steps", type=click.IntRange(1), default=25, show_default=True, help="Denoising steps.")
@click.option("--guidance", type=click.FloatRange(0), default=7.5, show_default=True, help="Text guidance scale.")
@click.option("--tau", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Fraction of the steps that see the last frame.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of row 1 (row i: seed + i - 1).")
@click.option("--save-generated", default=None,
              help="New folder to keep the clips --model generates (with a prompts.csv), to score again "
                   "with --generated.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
def eval_model_cmd(real: str, model: str | None, generated: str | None, prompts: str | None, metrics: str,
                   i3d: str | None, inception: str | None, c3d: str | None, clip_dir: str | None, frames: int,
                   fps: float | None, num_samples: int | None, fvd_size: int, i3d_layer: str, fid_size: int,
                   fid_frames: int | None, is_splits: int, size: str | None, steps: int, guidance: float,
                   tau: float, seed: int, save_generated: str | None, device: str, as_json: bool) -> None:
    """FVD, FID, IS and CLIPSIM of a model's clips against real videos (the paper's metrics).

    Extractor weights are read from local files only (nothing is downloaded). The protocol knobs
    (--frames, --fps, --num-samples, --fvd-size, --i3d-layer, --fid-size, --fid-frames, --is-splits)
    change the figures: compare numbers made with the same ones.
    """
    import json

    from pdedit.evaluate.model import Extractors, Protocol, evaluate_model
    from pdedit.video import parse_size

    protocol = Protocol(frames=frames, fps=fps, num_samples=num_samples, fvd_size=fvd_size, i3d_layer=i3d_layer,
                        fid_size=fid_size, fid_frames=fid_frames, is_splits=is_splits)
    report = evaluate_model(
        real, generated=generated, model=model, prompts=prompts,
        metrics=[m.strip() for m in metrics.split(",") if m.strip()],
        extractors=Extractors(i3d=i3d, inception=inception, c3d=c3d, clip=clip_dir), protocol=protocol,
        size=parse_size(size) if size else None, steps=steps, guidance=guidance, tau=tau, seed=seed,
        save_generated=save_generated, device=device, progress=sys.stderr.isatty(),
    )
    out = report.to_dict()
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"{out['generated_clips']} generated clips ({out['generated']}) against {out['real_clips']} real "
               f"({out['real']})")
    for key, label in (("fvd", "FVD"), ("fid", "FID"), ("is", "IS"), ("clipsim", "CLIPSIM")):
        if out[key] is not None:
            extra = f" +- {out['is_std']:.3f}" if key == "is" else ""
            click.echo(f"  {label:8s} {out[key]:.4f}{extra}")
    click.echo("  protocol " + ", ".join(f"{k}={v}" for k, v in out["protocol"].items()))
# ---- batch: many edit/generate jobs from a manifest (pdedit.batch) ----


@cli.command("batch", epilog="\b\nOne job a line in jobs.jsonl, e.g.\n"
             '  {"command": "edit", "video": "clip.mp4", "first_edit": "auto:sepia", "output": "sepia.mp4"}\n'
             "Across GPUs: accelerate launch -m pdedit batch jobs.jsonl -o edits\n\n\b\n"
             "Example:\n  pdedit batch jobs.jsonl -o edits --workers 2")
@click.argument("manifest")
@click.option("-o", "--out", "out_dir", required=True,
              help="Output folder: job outputs are relative to it; report.jsonl goes in it (created if missing).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Processes on this machine (CPU batches); under accelerate launch each process is one.")
@click.option("--allow-outside", is_flag=True, help="Let input paths leave the manifest's folder.")
@click.option("--force", is_flag=True, help="Redo every job, replacing its outputs [default: skip jobs already done].")
@click.pass_context
def batch_cmd(ctx: click.Context, manifest: str, out_dir: str, workers: int, allow_outside: bool,
              force: bool) -> None:
    """Run the edit/generate jobs of MANIFEST (JSONL or CSV), resumably, with a report of every job.

    Each job sets "command" (edit or generate) and that command's options, dashes as underscores
    (first_edit, last_edit, engine, output, ...). Input paths are relative to the manifest. A failed
    job is recorded in OUT/report.jsonl and the batch goes on (exit 2 at the end); a rerun skips the
    jobs whose outputs exist.
    """
    from pdedit.batch import run_batch

    summary = run_batch(manifest, out_dir, workers=workers, allow_outside=allow_outside, force=force,
                        progress=True)
    if summary.report is None:  # another accelerate process merges the report
        click.echo(f"this process: {summary}", err=True)
    else:
        click.echo(f"{summary}: {summary.report}")
    if summary.failed:
        failed = next(r for r in summary.records if r["status"] == "failed")
        click.echo(f"error: {summary.failed} job(s) failed, e.g. line {failed['line']}: {failed['error']}", err=True)
        ctx.exit(2)


@eval_group.command("tau", epilog="\b\nExample:\n  pdedit model init --tiny tiny-model\n"
                    "  mkdir held-out && pdedit sample held-out/a.mp4 && pdedit sample held-out/b.mp4 --seconds 1\n"
                    "  pdedit eval tau --model tiny-model --clips held-out --size 64x48 --steps 4 --plot tau.png")
@click.option("--model", "models", multiple=True, required=True,
              help="PixelDance model folder; repeat to compare models on the same clips and noise.")
@click.option("--clips", "clips_dir", required=True,
              help="Folder of held-out clips: videos, or subfolders of PNG frames; NAME.txt beside a clip is its prompt.")
@click.option("--taus", default="0,0.25,0.5,0.75,1", show_default=True, help="Comma-separated tau values in [0, 1].")
@click.option("--instruction", type=click.Choice(["image", "sketch", "pose", "boxes", "depth"]), default="image",
              show_default=True, help="Last-frame instruction made from each clip's real last frame.")
@click.option("--method", default=None, help="Converter method of --instruction (e.g. sketch: silhouette, xdog).")
@click.option("--prompt", default="", help="Prompt for clips without a NAME.txt [default: empty].")
@click.option("--frames", type=click.IntRange(2), default=None, help="Frames per clip [default: the first model's].")
@click.option("--size", default=None, help=SIZE_HELP + " [default: the first model's size]")
@click.option("--steps", type=click.IntRange(1), default=25, show_default=True, help="Denoising steps.")
@click.option("--guidance", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Text guidance scale (1: no guidance, half the work).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling noise (same at every tau).")
@click.option("--max-clips", type=click.IntRange(1), default=None, help="Measure only the first N clips (by name).")
@click.option("--plot", default=None, help="Also write a PNG of the error against tau here.")
@click.option("--force", is_flag=True, help="Replace the plot if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts) instead of tables.")
def eval_tau_cmd(models: tuple[str, ...], clips_dir: str, taus: str, instruction: str, method: str | None,
                 prompt: str, frames: int | None, size: str | None, steps: int, guidance: float, seed: int,
                 max_clips: int | None, plot: str | None, force: bool, as_json: bool) -> None:
    """First- and last-frame adherence of each model's clips against tau (PixelDance's tau study, Fig. 7).

    Every clip's real first frame and its last frame (or --instruction made from it) go to the model at
    each tau; the generated first and last frames are scored against the real ones: MSE, and the
    distance (px) between the centres of what differs from the background, the end-state error of an
    object on a plain background. Means ± standard errors over the clips.

    """
    import json

    from pathlib import Path

    from pdedit.engines.pixeldance import load_pipeline
    from pdedit.errors import BadInput
    from pdedit.evaluate.tau import load_clips, parse_taus, plot_curves, tau_curve
    from pdedit.video import check_output, parse_size

    tau_values = parse_taus(taus)
    if plot:
        if Path(plot).suffix.lower() != ".png":
            raise BadInput(f"--plot {plot} must end in .png")
        check_output(plot, force=force)
    pipes = [load_pipeline(m) for m in models]
    num_frames = frames or pipes[0].config.num_frames
    wh = parse_size(size) if size else pipes[0].default_size
    clips = load_clips(clips_dir, num_frames, wh, prompt=prompt, limit=max_clips)
    click.echo(f"{len(clips)} clips of {num_frames} frames at {wh[0]}x{wh[1]}, {steps} steps, "
               f"taus {', '.join(f'{t:g}' for t in tau_values)}", err=True)
    curves = []
    for model, pipe in zip(models, pipes):
        pipe.set_progress_bar_config(disable=True)
        curves.append(tau_curve(pipe, clips, tau_values, instruction=instruction, method=method, steps=steps,
                                guidance=guidance, seed=seed, name=model, progress=sys.stderr.isatty()))
    if plot:
        plot_curves(curves, plot)
    if as_json:
        click.echo(json.dumps({"clips": clips_dir, "models": [c.to_dict() for c in curves],
                               "plot": plot}))
        return
    for curve in curves:
        click.echo(f"{curve.model} ({curve.instruction} last frame), {curve.clips} clips; the object moves "
                   f"{curve.moved_px.mean():.2f} px from first to last frame")
        click.echo(curve.table())
    if plot:
        click.echo(plot)


def main() -> None:
    """Console-script entry point."""
    cli(obj={}, prog_name="pdedit")


if __name__ == "__main__":
    main()
