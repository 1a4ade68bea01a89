"""Video I/O speed and memory: decode fps and write fps at 640x360, peak RSS streaming vs loading whole.

    python benchmarks/video_io.py                 # uses ../shared/data/videos when present
    python benchmarks/video_io.py --frames 300    # frames to decode/write for the fps figures

Decoding uses bottle-detection.mp4 (640x360) and peak memory one-by-one-person-detection.mp4
(768x432, 1394 frames); without ../shared both fall back to clips made by `make_sample`. Peak RSS is
measured in separate child processes (each reports its own VmHWM), so the figures are independent.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def clip_or_sample(name: str, size: tuple[int, int], seconds: float, fps: float, folder: Path) -> Path:
    """The real clip ``name`` when present, else a sample of the same size made here."""
    from pdedit.video import make_sample

    real = VIDEOS / name
    if real.is_file():
        return real
    print(f"({name} not found; using a {size[0]}x{size[1]} sample instead)")
    return make_sample(folder / f"sample_{size[0]}x{size[1]}.mp4", seconds=seconds, fps=fps, size=size)


def decode_fps(path: Path, frames: int, decoder: str) -> float:
    """Frames per second decoding the first ``frames`` frames with ``decoder`` (opencv or ffmpeg)."""
    from pdedit.video import _decode, probe

    info = replace(probe(path), decoder=decoder)
    n = min(frames, info.frame_count)
    start = time.perf_counter()
    count = sum(1 for _ in _decode(info, range(n)))
    return count / (time.perf_counter() - start)


def write_fps(frames: list, folder: Path) -> float:
    """Frames per second writing ``frames`` as H.264 (CRF 18, preset medium) through the ffmpeg pipe."""
    from pdedit.video import write_video

    start = time.perf_counter()
    write_video(folder / "written.mp4", frames, 30, force=True)
    return len(frames) / (time.perf_counter() - start)


def child_peak_rss(mode: str, path: Path) -> float:
    """Run this script as a child in ``mode`` (baseline|stream|whole); its own peak RSS in MiB."""
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def child(mode: str, path: str) -> None:
    """In a child process: probe only, stream every frame, or hold every frame; print peak RSS."""
    from pdedit.video import iter_frames, probe

    probe(path)
    if mode == "stream":
        total = sum(int(f[0, 0, 0]) for f in iter_frames(path))
    elif mode == "whole":
        frames = list(iter_frames(path))
        total = len(frames)
    else:
        total = 0
    print(json.dumps({"mode": mode, "peak_mib": peak_rss_mib(), "check": total}))


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM belongs to this program alone; ru_maxrss would also count the
    parent's memory at fork time, which Linux carries across exec."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="frames decoded/written for the fps figures")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from pdedit.video import iter_frames, probe

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        small = clip_or_sample("bottle-detection.mp4", (640, 360), 20, 30, folder)
        long = clip_or_sample("one-by-one-person-detection.mp4", (768, 432), 139.4, 10, folder)

        start = time.perf_counter()
        info = probe(small)
        print(f"probe {small.name}: {1000 * (time.perf_counter() - start):.0f} ms "
              f"({info.width}x{info.height}, {info.frame_count} frames, decoder {info.decoder})")
        for decoder in ("opencv", "ffmpeg"):
            print(f"decode 640x360 ({decoder}): {decode_fps(small, args.frames, decoder):.0f} fps")
        frames = list(iter_frames(small, range(min(args.frames, info.frame_count))))
        print(f"write 640x360 (libx264 CRF 18, medium): {write_fps(frames, folder):.0f} fps over {len(frames)} frames")
        del frames

        info = probe(long)
        base, stream, whole = (child_peak_rss(mode, long) for mode in ("baseline", "stream", "whole"))
        print(f"peak RSS, {long.name} ({info.frame_count} frames of {info.width}x{info.height}):")
        print(f"  imports + probe only: {base:.0f} MiB")
        print(f"  streaming:            {stream:.0f} MiB (+{stream - base:.0f} over baseline)")
        print(f"  loading whole:        {whole:.0f} MiB (+{whole - base:.0f} over baseline)")
        print(f"  ratio whole/stream:   {whole / stream:.1f}x total, "
              f"{(whole - base) / max(stream - base, 1):.0f}x above baseline")


if __name__ == "__main__":
    main()
