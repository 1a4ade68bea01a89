"""The propagate engine on synthetic clips: a textured object moving over a panning textured background.

The per-frame oracle is the same edit applied to every source frame (the painted patch follows the object
because the test knows where the object is); the engine sees only the edited first and last frames.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pdedit.engines import EditJob, get_engine
import pdedit.engines.propagate as propagate_module
from pdedit.engines.appearance import fit_detail_map
from pdedit.engines.propagate import (
    FlowEstimator,
    PropagateConfig,
    disk_bytes,
    fit_colour_map,
    flow_confidence,
    is_cut,
    per_frame,
    propagate,
)
from pdedit.errors import BadInput
from pdedit.instructions.edits import pencil

SIZE = (160, 120)  # (w, h)
N = 16
OBJ = 40  # object side in pixels


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth-plus-fine random colour texture, uint8 (h, w, 3): flow can follow it."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for cell in (4, 16, 48):
        noise = rng.random((h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        img += cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC) * (cell / 68)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 200 + 30).astype(np.uint8)


def moving_clip(n: int = N, size=SIZE) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Frames of a textured square moving right and down over a background panning left; square corners."""
    w, h = size
    background = texture(h + 64, w + 64, 1)
    square = texture(OBJ, OBJ, 2)
    frames, corners = [], []
    for t in range(n):
        frame = background[32:32 + h, 32 + t:32 + t + w].copy()
        x, y = 20 + 5 * t, 40 + t
        frame[y:y + OBJ, x:x + OBJ] = square
        frames.append(frame)
        corners.append((x, y))
    return frames, corners


def grade(frame: np.ndarray) -> np.ndarray:
    """A colour grade: per-channel gamma and gain (a global edit)."""
    x = frame.astype(np.float32) / 255
    x = np.clip(x ** np.array([0.8, 1.0, 1.3]) * np.array([1.1, 1.0, 0.85]), 0, 1)
    return (x * 255 + 0.5).astype(np.uint8)


def paint(frame: np.ndarray, corner: tuple[int, int]) -> np.ndarray:
    """A local edit: a red patch painted on the moving square."""
    out = frame.copy()
    x, y = corner
    out[y + 10:y + 26, x + 8:x + 30] = (255, 40, 40)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (inf when equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def mean_psnr(frames, oracle) -> float:
    """Mean PSNR of the frames strictly between the keyframes."""
    return float(np.mean([psnr(a, b) for a, b in list(zip(frames, oracle))[1:-1]]))


def baselines(oracle):
    """The cross-fade of the two edited keyframes and the held first keyframe."""
    n = len(oracle)
    a, b = oracle[0].astype(np.float32), oracle[-1].astype(np.float32)
    fade = [((1 - t / (n - 1)) * a + t / (n - 1) * b + 0.5).astype(np.uint8) for t in range(n)]
    return fade, [oracle[0]] * n


@pytest.fixture(scope="module")
def clip():
    """The synthetic source clip and its square's corners."""
    return moving_clip()


EDITS = {
    "local patch": lambda f, c: paint(f, c),
    "colour grade": lambda f, c: grade(f),
    "grade and patch": lambda f, c: grade(paint(f, c)),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_output_beats_crossfade_and_held_keyframe_against_per_frame_oracle(clip, name):
    frames, corners = clip
    oracle = [EDITS[name](f, c) for f, c in zip(frames, corners)]
    out = list(propagate(frames, {0: oracle[0], N - 1: oracle[-1]}))
    fade, held = baselines(oracle)
    ours = mean_psnr(out, oracle)
    assert ours >= 35.0, f"{name}: {ours:.1f} dB"
    assert ours >= mean_psnr(fade, oracle) + 10.0
    assert ours >= mean_psnr(held, oracle) + 10.0


def test_keyframes_are_reproduced(clip):
    frames, corners = clip
    first, last = grade(paint(frames[0], corners[0])), paint(frames[-1], corners[-1])
    out = list(propagate(frames, {0: first, N - 1: last}))
    assert len(out) == N and out[0].dtype == np.uint8 and out[0].shape == frames[0].shape
    assert psnr(out[0], first) >= 45.0
    assert psnr(out[-1], last) >= 45.0


def test_basic_mode_carries_the_first_edit_to_the_end(clip):
    frames, corners = clip
    oracle = [paint(f, c) for f, c in zip(frames, corners)]
    out = list(propagate(frames, {0: oracle[0]}))
    assert len(out) == N and psnr(out[0], oracle[0]) >= 45.0
    _, held = baselines(oracle)
    # the patch moved with the square: the last frame is far closer to the oracle than the held edit
    assert psnr(out[-1], oracle[-1]) >= psnr(held[-1], oracle[-1]) + 8.0
    assert mean_psnr(out, oracle) >= 32.0


def test_confidence_is_lower_where_the_background_is_disoccluded():
    w, h = SIZE
    background = texture(h, w, 3)
    square = texture(OBJ, OBJ, 4)
    step = 8
    frames = []
    for x in (40, 40 + step):
        frame = background.copy()
        frame[40:40 + OBJ, x:x + OBJ] = square
        frames.append(frame)
    flow = FlowEstimator(SIZE)
    a, b = (flow.grey(f) for f in frames)
    # confidence of the flow from the second frame back to the first
    conf = flow_confidence(flow(b, a), flow(a, b))
    uncovered = conf[44:40 + OBJ - 4, 40 + 1:40 + step - 1]  # background that the square covered before
    static = conf[5:30, 5:w - 5]  # background far from the square
    assert static.mean() > 0.9
    assert uncovered.mean() < static.mean() - 0.4


def test_colour_map_fits_a_grade_and_ignores_a_painted_patch(clip):
    frames, corners = clip
    edited = grade(paint(frames[3], corners[3]))
    table = fit_colour_map(frames[3], edited)
    mapped = table(frames[5])  # another frame: the table must generalise, not memorise the patch
    assert psnr(mapped, grade(frames[5])) >= 38.0


class CountingClip:
    """A re-iterable source that counts how often it is iterated and how far each pass has read."""

    def __init__(self, frames):
        self._frames, self.passes, self.read = frames, 0, []

    def __len__(self) -> int:
        return len(self._frames)

    def __iter__(self):
        self.passes += 1
        self.read.append(0)
        for frame in self._frames:
            self.read[-1] += 1
            yield frame


def test_render_streams_in_two_passes_over_the_source(clip):
    frames, corners = clip
    source = CountingClip(frames)
    job = EditJob(source=source, first=grade(frames[0]), last=grade(frames[-1]), num_frames=N, fps=8.0, size=SIZE)
    engine = get_engine("propagate")
    assert engine.name == "propagate"
    out = engine.render(job)
    first = next(out)
    # pass 1 read the whole clip (flows), pass 2 only as far as the frame it emitted and the few whose blends
    # run ahead on the workers
    assert source.passes == 2 and source.read == [N, 1 + propagate_module._IN_FLIGHT]
    rest = list(out)
    assert len(rest) == N - 1 and all(f.shape == (SIZE[1], SIZE[0], 3) for f in rest)
    assert psnr(first, grade(frames[0])) >= 45.0


def test_coarser_flow_settings_still_clear_the_baselines(clip):
    frames, corners = clip
    oracle = [paint(f, c) for f, c in zip(frames, corners)]
    config = PropagateConfig(flow_side=96, preset="fast")
    out = list(propagate(frames, {0: oracle[0], N - 1: oracle[-1]}, config=config))
    fade, _ = baselines(oracle)
    assert mean_psnr(out, oracle) >= mean_psnr(fade, oracle) + 5.0


# ---- second generation: edits tied to the screen, content that enters, cuts, bounded disk ------------


def vignette(frame: np.ndarray) -> np.ndarray:
    """Darker corners: a radial gain from 1 at the centre to 0.4 at the corners (a screen-attached edit)."""
    h, w = frame.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = (((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2) / 2
    return (frame * (1 - 0.6 * r2)[..., None] + 0.5).astype(np.uint8)


def entering_clip(n: int = N) -> list[np.ndarray]:
    """A static, low-texture grey floor; a bright textured square enters from the left after frame 4."""
    w, h = SIZE
    rng = np.random.default_rng(5)
    floor = np.clip(90 + cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (0, 0), 2), 0, 255)
    floor = np.repeat(floor[..., None], 3, axis=2).astype(np.uint8)
    square = np.clip(texture(OBJ, OBJ, 7).astype(np.int16) + 40, 0, 255).astype(np.uint8)
    frames = []
    for t in range(n):
        frame = floor.copy()
        x = -OBJ + 12 * (t - 4)
        if x > -OBJ:
            x0, x1 = max(x, 0), min(x + OBJ, w)
            frame[40:40 + OBJ, x0:x1] = square[:, x0 - x:x1 - x]
        frames.append(frame)
    return frames


def test_vignette_reaches_an_object_entering_a_flat_static_scene():
    frames = entering_clip()
    oracle = [vignette(f) for f in frames]
    out = list(propagate(frames, {0: oracle[0], N - 1: oracle[-1]}))
    fade, _ = baselines(oracle)
    scores = [psnr(a, b) for a, b in zip(out[1:-1], oracle[1:-1])]
    # the first wave gave ~21 dB on such footage (the colour table mapped the entering bright square dark)
    assert min(scores) >= 38.0, f"worst frame {min(scores):.1f} dB"
    assert mean_psnr(out, oracle) >= mean_psnr(fade, oracle) + 8.0


def overlay(frame: np.ndarray) -> np.ndarray:
    """A fixed, opaque red logo at one screen spot."""
    out = frame.copy()
    out[30:60, 70:110] = (230, 30, 40)
    return out


def test_fixed_overlay_stays_on_the_screen_while_an_object_passes_under_it(clip):
    frames, corners = clip
    oracle = [overlay(f) for f in frames]
    out = list(propagate(frames, {0: oracle[0], N - 1: oracle[-1]}))
    inside = [psnr(a[30:60, 70:110], b[30:60, 70:110]) for a, b in zip(out[1:-1], oracle[1:-1])]
    # An object passing right under the logo between the keyframes is the hard case: the logo holds
    # (no ghost of it moves off with the square), but its inside is ~25 dB there, off at the logo edges.
    assert np.mean(inside) >= 23.0, f"inside the logo: mean {np.mean(inside):.1f} dB"
    assert mean_psnr(out, oracle) >= 34.0


def cut_clip(n: int = N, cut: int = 8) -> list[np.ndarray]:
    """Two shots: a textured background panning left, then a different one panning right."""
    w, h = SIZE
    one, two = texture(h + 64, w + 64, 11), texture(h + 64, w + 64, 12)[..., ::-1]
    return [one[32:32 + h, 32 + t:32 + t + w].copy() if t < cut else two[32:32 + h, 40 - t:40 - t + w].copy()
            for t in range(n)]


def test_scene_cut_is_detected_and_no_residual_crosses_it():
    frames = cut_clip()
    estimator = FlowEstimator(SIZE)
    greys = [estimator.grey(f) for f in frames]
    cuts = [is_cut(greys[t - 1], greys[t], flow_confidence(estimator(greys[t - 1], greys[t]),
                                                            estimator(greys[t], greys[t - 1])))
            for t in range(1, N)]
    assert [t for t, c in enumerate(cuts, start=1) if c] == [8]
    # a mark painted on shot one only: the first keyframe has it, the last (shot two) does not
    first = frames[0].copy()
    first[50:70, 60:100] = (255, 255, 0)
    out = list(propagate(frames, {0: first, N - 1: frames[-1]}))
    for t in range(8, N - 1):  # shot two never shows the mark, not even faded
        mark = psnr(out[t][50:70, 60:100], frames[t][50:70, 60:100])
        assert mark >= 35.0, f"frame {t}: {mark:.1f} dB where the mark was"
        assert psnr(out[t], frames[t]) >= 30.0  # (keyframe a's colour table, fitted around the mark, still applies)
    assert out[3][55:65, 65:90].astype(int).sum(axis=2).mean() > 450  # shot one carries it (yellow: 510)


def test_temporary_disk_grows_with_the_longest_stretch_between_keyframes(monkeypatch, clip):
    import pdedit.engines.propagate as engine

    frames, _ = clip
    allocated = []
    real = engine._DiskFrames

    class Recording(real):
        def __init__(self, folder, name, count, shape, dtype=np.float32):
            allocated.append(count * int(np.prod(shape)) * np.dtype(dtype).itemsize)
            super().__init__(folder, name, count, shape, dtype)

    monkeypatch.setattr(engine, "_DiskFrames", Recording)
    keys = {k: grade(frames[k]) for k in (0, 4, 8, 12, N - 1)}
    out = list(propagate(frames, keys))
    assert len(out) == N and all(psnr(out[k], keys[k]) >= 45 for k in keys)
    stretch = 4  # the longest gap between keyframes, not the 16-frame clip
    assert sum(allocated) <= disk_bytes(SIZE, stretch + 1) and sum(allocated) >= disk_bytes(SIZE, stretch) // 2
    allocated.clear()
    list(propagate(frames, {0: keys[0], N - 1: grade(frames[-1])}))
    assert sum(allocated) >= 3 * disk_bytes(SIZE, stretch)


def test_a_keyframe_from_another_shot_is_refused(clip):
    frames, _ = clip
    other = texture(SIZE[1], SIZE[0], 99)
    with pytest.raises(BadInput, match="does not look like an edit of frame 15"):
        list(propagate(frames, {0: grade(frames[0]), N - 1: other}))


def test_per_frame_mode_applies_the_filter_and_settles_its_flicker(clip):
    from pdedit.instructions.edits import cartoon

    frames, _ = clip
    oracle = [cartoon(f) for f in frames]
    plain = list(per_frame(frames, cartoon, smooth=0.0))
    assert all(np.array_equal(a, b) for a, b in zip(plain, oracle))
    smoothed = list(per_frame(frames, cartoon))
    warps = [(FlowEstimator(SIZE)(FlowEstimator(SIZE).grey(frames[t]), FlowEstimator(SIZE).grey(frames[t - 1])))
             for t in range(1, N)]

    def flicker(video):
        h, w = SIZE[1], SIZE[0]
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        errs = [np.abs(video[t].astype(np.float32) - cv2.remap(video[t - 1].astype(np.float32), xs + f[..., 0],
                                                                 ys + f[..., 1], cv2.INTER_LINEAR))[8:-8, 8:-8].mean()
                for t, f in enumerate(warps, start=1)]
        return float(np.mean(errs))

    assert flicker(smoothed) < flicker(oracle)
    assert mean_psnr(smoothed, oracle) >= 30.0


def test_colour_map_keeps_a_rare_colours_edit_and_takes_unseen_colours_by_the_gain():
    # Darkish content graded by a gain of 0.8, and 0.5% of the pixels reds the edit turns blue (red and blue
    # swapped: paint on a small object is a rare, spread colour): the reds' edit must be kept, and white
    # (which no keyframe pixel has) darkened by the gain, not by whatever the data's trend extrapolates to.
    rng = np.random.default_rng(3)
    source = rng.integers(0, 120, (120, 200, 3)).astype(np.uint8)
    edited = (source * 0.8 + 0.5).astype(np.uint8)
    rare = rng.random((120, 200)) < 0.005
    reds = np.clip(np.array([200, 40, 40]) + rng.integers(-25, 26, (int(rare.sum()), 3)), 0, 255)
    source[rare], edited[rare] = reds, reds[:, [2, 1, 0]]
    table = fit_colour_map(source, edited)
    probe = np.array([[[200, 40, 40], [230, 60, 30], [250, 250, 250]]], np.uint8)
    red, other_red, white = table(probe)[0].astype(int)
    assert np.abs(red - (40, 40, 200)).max() <= 12
    assert np.abs(other_red - (30, 60, 230)).max() <= 20
    assert np.abs(white - 200).max() <= 20


def dimmed_clip() -> list[np.ndarray]:
    """The moving clip with its exposure dipping to 75% in the middle frames (an automatic exposure change)."""
    frames, _ = moving_clip()
    gain = [1.0 - 0.25 * np.sin(np.pi * t / (N - 1)) ** 2 for t in range(N)]
    return [(f * g + 0.5).astype(np.uint8) for f, g in zip(frames, gain)]


def test_detail_map_is_kept_for_a_drawing_and_refused_for_a_grade(clip):
    frames, _ = clip
    keys = (0, N - 1)

    def remainders(edit):
        """What one colour table fitted on both keyframes leaves of each (as the engine fits it), and the table."""
        edited = [edit(frames[t]) for t in keys]
        table = fit_colour_map(np.hstack([frames[t] for t in keys]), np.hstack(edited))
        return [(frames[t], e.astype(np.float32) - table(frames[t])) for t, e in zip(keys, edited)], table

    assert fit_detail_map(remainders(grade)[0]) is None
    pairs, table = remainders(pencil)
    detail = fit_detail_map(pairs)
    assert detail is not None
    # The drawing's map predicts what the table leaves of a frame it was not fitted on.
    t = N // 2
    rest = pencil(frames[t]).astype(np.float32) - table(frames[t])
    assert np.mean((rest - detail(frames[t])) ** 2) < 0.5 * np.mean(rest**2)


def test_a_drawing_is_redrawn_on_each_frame_where_the_exposure_changes():
    # A pencil drawing does not change with exposure; a carried residual on a darker frame's colours does.
    frames = dimmed_clip()
    oracle = [pencil(f) for f in frames]
    keys = {0: oracle[0], N - 1: oracle[-1]}
    redrawn = list(propagate(frames, keys))
    carried = list(propagate(frames, keys, config=PropagateConfig(detail=False)))
    assert mean_psnr(redrawn, oracle) >= mean_psnr(carried, oracle) + 3.0
    assert min(psnr(a, b) for a, b in zip(redrawn, oracle)) >= min(psnr(a, b) for a, b in zip(carried, oracle)) + 3.0
