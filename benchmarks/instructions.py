"""Speed of the weight-free instructions: milliseconds per 512x512 image for every auto edit and converter.

    python benchmarks/instructions.py              # median of 5 runs on the astronaut photo
    python benchmarks/instructions.py --runs 11    # more runs, steadier medians

The photo is scikit-image's astronaut (512x512, RGB). colortransfer reads its reference (the cat
photo, written to a temporary PNG) on every call, as `apply_edit` does. Each figure is the median
over the runs after one warm-up call; the ratio column compares it with sepia, the cheapest
full-image colour edit, so the figures stay comparable across machines.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np


def median_ms(fn: Callable[[], np.ndarray], runs: int) -> float:
    """Median wall time of ``fn`` in milliseconds over ``runs`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    """Time each weight-free edit and converter on a 512x512 photo and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per item (median reported)")
    args = parser.parse_args()

    from skimage import data

    from pdedit.instructions import EDITS, WEIGHT_FREE_CONVERSIONS, apply_edit, convert
    from pdedit.video import save_image

    frame = data.astronaut()  # (512, 512, 3) uint8
    with tempfile.TemporaryDirectory() as tmp:
        ref = save_image(Path(tmp) / "cat.png", data.chelsea())
        rows = []
        for name in EDITS:
            spec = f"auto:{name}:ref={ref}" if name == "colortransfer" else f"auto:{name}"
            rows.append((f"auto:{name}", median_ms(lambda: apply_edit(frame, spec), args.runs)))
        for kind, method in WEIGHT_FREE_CONVERSIONS:
            rows.append((f"{kind}:{method}", median_ms(lambda: convert(frame, kind, method=method), args.runs)))
        clip = [np.roll(frame, 4 * i, axis=1) for i in range(16)]  # 16 frames, content moving right
        rows.append(("boxes:motion (16 frames)",
                     median_ms(lambda: convert(frame, "boxes", method="motion", video_frames=clip), args.runs)))
    base = dict(rows)["auto:sepia"]
    print(f"512x512 RGB, median of {args.runs} runs")
    print(f"{'instruction':28s} {'ms':>8s} {'x sepia':>8s}")
    for name, ms in rows:
        print(f"{name:28s} {ms:8.1f} {ms / base:8.1f}")


if __name__ == "__main__":
    main()
