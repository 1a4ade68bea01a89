"""pdedit.conditioning: c_image layout, image noise, last-frame dropping, the tau schedule."""

from __future__ import annotations

import pytest
import torch

from pdedit.conditioning import (
    build_c_image,
    drop_last_frame,
    last_frame_schedule,
    perturb_c_image,
    round_steps,
)


def _latents(b=2, c=4, h=3, w=5, value=1.0):
    return torch.full((b, c, h, w), value)


def test_c_image_puts_first_and_last_at_the_ends_and_zeros_between():
    f_first, f_last = _latents(value=1.0), _latents(value=2.0)
    c_image = build_c_image(f_first, f_last, num_frames=6)
    assert c_image.shape == (2, 4, 6, 3, 5)
    assert torch.equal(c_image[:, :, 0], f_first)
    assert torch.equal(c_image[:, :, -1], f_last)
    assert c_image[:, :, 1:-1].abs().sum() == 0


def test_c_image_without_last_frame_has_zero_last_frame():
    c_image = build_c_image(_latents(), None, num_frames=4)
    assert c_image[:, :, -1].abs().sum() == 0
    assert c_image[:, :, 0].abs().sum() > 0


def test_c_image_rejects_one_frame_and_mismatched_shapes():
    with pytest.raises(ValueError, match="num_frames"):
        build_c_image(_latents(), None, num_frames=1)
    with pytest.raises(ValueError, match="differ"):
        build_c_image(_latents(), _latents(h=4), num_frames=4)


def test_perturb_changes_instruction_frames_only_and_is_seeded():
    c_image = build_c_image(_latents(), None, num_frames=4)
    a = perturb_c_image(c_image, 0.5, torch.Generator().manual_seed(1))
    b = perturb_c_image(c_image, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert (a[:, :, 0] - c_image[:, :, 0]).abs().mean() > 0.1
    assert a[:, :, 1:].abs().sum() == 0  # zero frames (middle and the absent last frame) stay exact zeros
    assert torch.equal(perturb_c_image(c_image, 0.0), c_image)
    with pytest.raises(ValueError):
        perturb_c_image(c_image, -0.1)


def test_perturb_noise_std_follows_level():
    c_image = build_c_image(_latents(b=4, h=32, w=32), _latents(b=4, h=32, w=32), num_frames=3)
    delta = perturb_c_image(c_image, 0.3, torch.Generator().manual_seed(0)) - c_image
    assert delta[:, :, 0].std().item() == pytest.approx(0.3, rel=0.1)


def test_drop_last_frame_per_sample():
    c_image = build_c_image(_latents(), _latents(value=2.0), num_frames=4)
    dropped = drop_last_frame(c_image, torch.tensor([True, False]))
    assert torch.equal(dropped[0], c_image[0])
    assert dropped[1, :, -1].abs().sum() == 0
    assert torch.equal(dropped[1, :, 0], c_image[1, :, 0])
    assert drop_last_frame(c_image, False)[:, :, -1].abs().sum() == 0


@pytest.mark.parametrize(
    ("tau", "steps", "expected"),
    [(0.0, 25, 0), (1.0, 25, 25), (0.5, 5, 3), (0.5, 4, 2), (0.25, 8, 2), (0.1, 25, 3), (0.99, 10, 10)],
)
def test_last_frame_schedule_exact_counts(tau, steps, expected):
    assert sum(last_frame_schedule(tau, steps)) == expected
    assert round_steps(tau, steps) == expected  # strength counts its steps the same way


def test_last_frame_schedule_count_monotone_in_tau():
    for steps in (1, 7, 25, 50):
        counts = [sum(last_frame_schedule(i / 100, steps)) for i in range(101)]
        assert counts == sorted(counts)
        assert counts[0] == 0 and counts[-1] == steps


def test_schedule_is_a_prefix_of_true_steps():
    schedule = last_frame_schedule(0.4, 10)
    assert schedule == [True] * 4 + [False] * 6


def test_last_frame_schedule_rejects_bad_tau():
    with pytest.raises(ValueError):
        last_frame_schedule(1.5, 10)
    with pytest.raises(ValueError):
        last_frame_schedule(-0.1, 10)
