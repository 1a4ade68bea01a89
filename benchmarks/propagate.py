"""Quality, flicker, speed and memory of the propagate engine on real clips.

For each clip (a window of consecutive frames at 640x360) and each edit written below (a colour grade,
a cartoon filter, a local recolour of content-selected regions), the edit is applied to the first and
last frame only, and the output is compared with the same edit applied to every source frame (the
per-frame oracle):

- PSNR against the oracle, for the propagate engine (before and after H.264 at CRF 18) and for two
  baselines: a cross-fade between the edited keyframes and the edited first keyframe held;
- flicker: mean warping error between consecutive output frames, warped along the source's own flow
  (non-occluded pixels only), as a ratio to the same figure for the oracle (1.0 = as steady as the oracle);
- speed: frames per second of the engine at 640x360 on this machine, decoding included;
- memory: peak RSS of a child process rendering the whole 1394-frame one-by-one-person-detection.mp4
  against one rendering its first 100 frames (a ratio near 1.0: memory does not grow with length).

Run: ``.venv/bin/python benchmarks/propagate.py`` (``--quick`` for one clip, ``--no-memory`` to skip the
long clip). Needs ../shared/data/videos.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pdedit.engines.propagate import FlowEstimator, flow_confidence, propagate
from pdedit.video import iter_frames, open_clip, write_video

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
CLIPS = {  # name -> window start (s): 60 consecutive frames from there
    "walk.mkv": 0.0,
    "bottle-detection.mp4": 20.0,
    "vtest.avi": 10.0,
    "car-detection.mp4": 5.0,
}
LONG_CLIP = "one-by-one-person-detection.mp4"
SIZE = (640, 360)


# ---- the edits (deterministic; the oracle applies them to every frame) ----------------------------


def grade(frame: np.ndarray) -> np.ndarray:
    """A colour grade: more saturation, warm highlights, lifted blue-green shadows."""
    x = frame.astype(np.float32) / 255
    lum = x.mean(axis=2, keepdims=True)
    x = np.clip(lum + (x - lum) * 1.3, 0, 1) ** np.array([0.85, 1.0, 1.2], np.float32)
    x = x * np.array([1.08, 1.0, 0.9], np.float32) + np.array([0.0, 0.02, 0.05], np.float32) * (1 - lum)
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def cartoon(frame: np.ndarray) -> np.ndarray:
    """A cartoon filter: edge-preserving smoothing, colours quantised to 8 levels, dark outlines."""
    smooth = frame
    for _ in range(2):
        smooth = cv2.bilateralFilter(smooth, 7, 40, 5)
    flat = (smooth // 32) * 32 + 16
    edges = cv2.Canny(cv2.cvtColor(smooth, cv2.COLOR_RGB2GRAY), 80, 160)
    ink = np.clip(cv2.GaussianBlur(edges, (3, 3), 0).astype(np.float32) / 255 * 2, 0, 1)[..., None]
    return (flat.astype(np.float32) * (1 - 0.8 * ink) + 0.5).astype(np.uint8)


def local(frame: np.ndarray) -> np.ndarray:
    """A local edit: bright, saturated regions (grown and feathered) recoloured; the rest untouched."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    chosen = ((hsv[..., 2] > 150) & (hsv[..., 1] > 40)).astype(np.uint8) * 255
    mask = cv2.GaussianBlur(cv2.dilate(chosen, np.ones((9, 9), np.uint8)), (0, 0), 4).astype(np.float32)[..., None] / 255
    recoloured = hsv.copy()
    recoloured[..., 0] = (hsv[..., 0].astype(int) + 60) % 180
    recoloured[..., 1] = np.clip(hsv[..., 1].astype(int) + 80, 0, 255)
    rgb = cv2.cvtColor(recoloured, cv2.COLOR_HSV2RGB).astype(np.float32)
    return (frame * (1 - mask) + rgb * mask + 0.5).astype(np.uint8)


EDITS = {"grade": grade, "cartoon": cartoon, "local": local}


# ---- measures -----------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB (capped at 99 for identical frames)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else float(10 * np.log10(255**2 / mse))


def mean_psnr(frames, oracle) -> float:
    """Mean PSNR over the frames between the keyframes."""
    return float(np.mean([psnr(a, b) for a, b in list(zip(frames, oracle))[1:-1]]))


def source_warps(frames):
    """Per consecutive pair: the flow from frame t to t-1 (full size) and its confidence."""
    flow = FlowEstimator((frames[0].shape[1], frames[0].shape[0]))
    greys = [flow.grey(f) for f in frames]
    return [(flow(greys[t], greys[t - 1]), flow_confidence(flow(greys[t], greys[t - 1]), flow(greys[t - 1], greys[t])))
            for t in range(1, len(frames))]


def warping_error(frames, warps) -> float:
    """Mean absolute difference between frame t and frame t-1 warped along the source flow (occlusions masked)."""
    errors = []
    h, w = frames[0].shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    for t, (flow, conf) in enumerate(warps, start=1):
        prev = cv2.remap(frames[t - 1].astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)
        valid = conf > 0.5
        errors.append(np.abs(frames[t].astype(np.float32) - prev)[valid].mean())
    return float(np.mean(errors))


def encoded(frames, fps: float, folder: str) -> list[np.ndarray]:
    """The frames after writing an H.264 mp4 at CRF 18 and decoding it again."""
    path = Path(folder) / "out.mp4"
    write_video(path, frames, fps, crf=18, force=True)
    return list(iter_frames(path))


def quality(name: str, start: float, num: int) -> list[dict]:
    """Rows of PSNR and flicker figures for one clip and every edit."""
    clip = open_clip(VIDEOS / name, start=start, end=start + (num + 0.5) / _fps(name), size=SIZE)
    frames = clip.frames()[:num]
    warps = source_warps(frames)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for edit_name, edit in EDITS.items():
            oracle = [edit(f) for f in frames]
            n = len(frames)
            t0 = time.perf_counter()
            out = list(propagate(frames, {0: oracle[0], n - 1: oracle[-1]}))
            seconds = time.perf_counter() - t0
            a, b = oracle[0].astype(np.float32), oracle[-1].astype(np.float32)
            fade = [((1 - t / (n - 1)) * a + t / (n - 1) * b + 0.5).astype(np.uint8) for t in range(n)]
            rows.append({
                "clip": name, "edit": edit_name, "frames": n,
                "propagate": mean_psnr(out, oracle),
                "propagate_h264": mean_psnr(encoded(out, clip.fps, folder), oracle),
                "oracle_h264": mean_psnr(encoded(oracle, clip.fps, folder), oracle),
                "crossfade": mean_psnr(fade, oracle),
                "held": mean_psnr([oracle[0]] * n, oracle),
                "flicker": warping_error(out, warps) / warping_error(oracle, warps),
                "fps_in_memory": n / seconds,
            })
    return rows


def _fps(name: str) -> float:
    """The source frame rate of a clip."""
    cap = cv2.VideoCapture(str(VIDEOS / name))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return fps


# ---- speed and memory (in a child process, so peak RSS is this run's alone) --------------------


def render_child(name: str, num: int | None) -> None:
    """Child: render ``num`` frames (all when None) of a clip at SIZE with a graded keyframe pair; print stats."""
    t0 = time.perf_counter()
    end = None if num is None else (num + 0.5) / _fps(name)
    clip = open_clip(VIDEOS / name, end=end, size=SIZE)
    first, last = grade(clip.first()), grade(clip.last())
    count = sum(1 for _ in propagate(clip, {0: first, len(clip) - 1: last}))
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{count} {seconds:.3f} {peak_rss_mb():.1f} {usage.ru_utime + usage.ru_stime:.3f}")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    VmHWM from /proc where there is one: ru_maxrss survives fork + exec on Linux, so a child would report
    its parent's peak (the quality runs) instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(name: str, num: int | None) -> tuple[int, float, float, float]:
    """(frames, wall seconds, peak RSS MB, CPU seconds) of a child render."""
    args = [sys.executable, __file__, "--child", name] + ([] if num is None else ["--child-frames", str(num)])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1]), float(out[2]), float(out[3])


def quality_table(clips: dict[str, float], num: int) -> None:
    """Print PSNR and flicker per clip and edit, the means per edit, and the margin over the baselines."""
    print(f"PSNR (dB) against the per-frame oracle, {num}-frame windows at {SIZE[0]}x{SIZE[1]}; "
          "flicker = warping error / the oracle's")
    head = f"{'clip':22s} {'edit':8s} {'propagate':>9s} {'+h264':>6s} {'oracle+h264':>11s} {'x-fade':>7s} " \
           f"{'held':>6s} {'flicker':>8s}"
    print(head)
    rows = []
    for name, start in clips.items():
        for row in quality(name, start, num):
            rows.append(row)
            print(f"{row['clip']:22s} {row['edit']:8s} {row['propagate']:9.1f} {row['propagate_h264']:6.1f} "
                  f"{row['oracle_h264']:11.1f} {row['crossfade']:7.1f} {row['held']:6.1f} {row['flicker']:8.2f}",
                  flush=True)
    for edit in EDITS:
        sel = [r for r in rows if r["edit"] == edit]
        print(f"{'mean':22s} {edit:8s} {np.mean([r['propagate'] for r in sel]):9.1f} "
              f"{np.mean([r['propagate_h264'] for r in sel]):6.1f} {np.mean([r['oracle_h264'] for r in sel]):11.1f} "
              f"{np.mean([r['crossfade'] for r in sel]):7.1f} {np.mean([r['held'] for r in sel]):6.1f} "
              f"{np.mean([r['flicker'] for r in sel]):8.2f}")
    gains = [r["propagate"] - max(r["crossfade"], r["held"]) for r in rows]
    print(f"propagate minus the better baseline: min {min(gains):.1f} dB, mean {np.mean(gains):.1f} dB; "
          f"worst propagate {min(r['propagate'] for r in rows):.1f} dB")


def main() -> None:
    """Print the quality table, then speed and memory."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per quality window")
    parser.add_argument("--quick", action="store_true", help="one clip only")
    parser.add_argument("--no-memory", action="store_true", help="skip the 1394-frame memory run")
    parser.add_argument("--no-quality", action="store_true", help="only the speed and memory runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-frames", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        render_child(args.child, args.child_frames)
        return
    if not VIDEOS.is_dir():
        sys.exit(f"real clips not found at {VIDEOS}")

    clips = {} if args.no_quality else dict(list(CLIPS.items())[:1]) if args.quick else CLIPS
    if clips:
        quality_table(clips, args.frames)
    n, seconds, _, cpu = run_child("bottle-detection.mp4", 300)
    load = os.getloadavg()[0]
    print(f"speed: {n} frames at {SIZE[0]}x{SIZE[1]} (decode twice + flow + render) in {seconds:.1f} s = "
          f"{n / seconds:.1f} fps; {cpu:.1f} CPU-seconds = {n / cpu:.1f} frames per CPU-second "
          f"(load average {load:.1f} on {os.cpu_count()} cores while measuring)")
    if not args.no_memory and (VIDEOS / LONG_CLIP).is_file():
        short = run_child(LONG_CLIP, 100)
        full = run_child(LONG_CLIP, None)
        print(f"memory: peak RSS {short[2]:.0f} MB for {short[0]} frames, {full[2]:.0f} MB for {full[0]} frames "
              f"of {LONG_CLIP} (ratio {full[2] / short[2]:.2f}); {full[0] / full[1]:.1f} fps on the long clip")


if __name__ == "__main__":
    main()
