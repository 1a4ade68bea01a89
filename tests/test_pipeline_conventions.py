"""PixelDancePipeline follows diffusers' pipeline conventions, one convention per test, on the tiny model.

Each is what diffusers' generic ``PipelineTesterMixin`` (or its text-to-video test) asks of a pipeline, stated
here so that the project's own suite fails when one breaks: call signature, encode_prompt in isolation,
step-end callbacks steering latents / embeddings / guidance, num_timesteps, interrupt, given latents,
num_videos_per_prompt, lists of generators and of tensors, StableDiffusionMixin, ValueErrors, and a pinned
output slice of the seeded tiny pipeline.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from diffusers.pipelines.pipeline_utils import StableDiffusionMixin
from diffusers.utils.torch_utils import randn_tensor

from pdedit.errors import BadInput, PdeditError
from pdedit.engines.pixeldance import load_pipeline
from pdedit.pipeline import PixelDancePipeline

pytestmark = pytest.mark.usefixtures("single_thread_torch")

C = 4  # latent channels of the tiny model
SIZE = 32  # frames of 32x32 pixels: latents of 4x4


def _load(folder) -> PixelDancePipeline:
    pipe = load_pipeline(folder, device=None)  # the CPU even where a GPU exists: the pinned slice is a CPU figure
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe(tiny_model_dir) -> PixelDancePipeline:
    """One loaded pipeline for the tests that leave it as they found it (a call resets its run state)."""
    return _load(tiny_model_dir)


@pytest.fixture()
def fresh_pipe(tiny_model_dir) -> PixelDancePipeline:
    """A pipeline of its own, for a test that switches a feature on and off."""
    return _load(tiny_model_dir)


def _frame(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _inputs(seed: int = 0, **overrides) -> dict:
    inputs = dict(
        prompt="a red ball rolls",
        first_frame=_frame(1),
        last_frame=_frame(2),
        num_frames=4,
        height=SIZE,
        width=SIZE,
        num_inference_steps=3,
        guidance_scale=7.5,
        tau=0.5,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    inputs.update(overrides)
    return inputs


def _spy_unet(pipe, monkeypatch) -> list[dict]:
    """Record every UNet call's input sample (B, 2C, F, h, w) and text embeddings (B, L, D)."""
    calls: list[dict] = []
    forward = pipe.unet.forward

    def spy(sample, timestep, encoder_hidden_states, *args, **kwargs):
        calls.append({"sample": sample.clone(), "text": encoder_hidden_states.clone(), "kwargs": kwargs})
        return forward(sample, timestep, encoder_hidden_states, *args, **kwargs)

    monkeypatch.setattr(pipe.unet, "forward", spy)
    return calls


def test_call_signature_has_the_diffusers_parameters():
    params = inspect.signature(PixelDancePipeline.__call__).parameters
    for name in ("prompt_embeds", "negative_prompt_embeds", "cross_attention_kwargs", "latents",
                 "num_videos_per_prompt", "generator", "output_type", "return_dict", "callback_on_step_end",
                 "callback_on_step_end_tensor_inputs", "prompt", "negative_prompt", "height", "width",
                 "guidance_scale", "num_inference_steps"):
        assert name in params, name
        assert params[name].default is not inspect.Parameter.empty, f"{name} must be optional"


def test_encode_prompt_runs_on_a_pipeline_of_text_components_only(pipe):
    text_only = PixelDancePipeline(vae=None, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=None,
                                   scheduler=None)
    embeds, negative = text_only.encode_prompt("a red ball rolls", torch.device("cpu"), 2, True)
    assert embeds.shape == negative.shape == (2, pipe.tokenizer.model_max_length, pipe.text_encoder.config.hidden_size)
    assert torch.equal(embeds[0], embeds[1])  # num_videos_per_prompt repeats each prompt's embedding
    assert not torch.equal(embeds, negative)  # the prompt is not the empty negative
    alone, none = text_only.encode_prompt(["a red ball rolls"], do_classifier_free_guidance=False)
    assert none is None
    torch.testing.assert_close(alone[0], embeds[0])


def test_precomputed_embeddings_give_the_prompts_video(pipe):
    embeds, negative = pipe.encode_prompt("a red ball rolls", negative_prompt="blurry")
    from_text = pipe(**_inputs(negative_prompt="blurry")).frames
    from_embeds = pipe(**_inputs(prompt=None, prompt_embeds=embeds, negative_prompt_embeds=negative)).frames
    np.testing.assert_allclose(from_embeds, from_text, atol=1e-6)
    other = pipe(**_inputs(prompt=None, prompt_embeds=negative, negative_prompt_embeds=negative)).frames
    assert np.abs(other - from_text).max() > 1e-3  # the embeddings are really what drives the text branch


def test_callback_can_zero_the_latents_at_the_last_step(pipe):
    def zero_last(p, i, t, tensors):
        if i == p.num_timesteps - 1:
            tensors["latents"] = torch.zeros_like(tensors["latents"])
        return tensors

    latents = pipe(**_inputs(output_type="latent", callback_on_step_end=zero_last,
                             callback_on_step_end_tensor_inputs=pipe._callback_tensor_inputs)).frames
    assert latents.shape == (1, C, 4, SIZE // 8, SIZE // 8)
    assert latents.abs().sum() == 0


def test_callback_returned_prompt_embeds_drive_the_next_steps(pipe, monkeypatch):
    new_embeds, _ = pipe.encode_prompt("night falls", do_classifier_free_guidance=False)

    def swap(p, i, t, tensors):
        return {"prompt_embeds": new_embeds} if i == 0 else {}

    calls = _spy_unet(pipe, monkeypatch)
    pipe(**_inputs(callback_on_step_end=swap, callback_on_step_end_tensor_inputs=["prompt_embeds"]))
    old_embeds, negative = pipe.encode_prompt("a red ball rolls")
    # under guidance the UNet sees [negative, prompt]; from step 1 on the prompt half is the new one
    torch.testing.assert_close(calls[0]["text"], torch.cat([negative, old_embeds]))
    for call in calls[1:]:
        torch.testing.assert_close(call["text"], torch.cat([negative, new_embeds]))


def test_callback_returned_c_image_drives_the_next_steps(pipe, monkeypatch):
    def blank_instructions(p, i, t, tensors):
        return {"c_image": torch.zeros_like(tensors["c_image"])} if i == 0 else {}

    calls = _spy_unet(pipe, monkeypatch)
    pipe(**_inputs(callback_on_step_end=blank_instructions, callback_on_step_end_tensor_inputs=["c_image"]))
    assert calls[0]["sample"][:, C:].abs().amax() > 0
    assert all(c["sample"][:, C:].abs().amax() == 0 for c in calls[1:])


def test_cross_attention_kwargs_reach_the_unet(pipe, monkeypatch):
    calls = _spy_unet(pipe, monkeypatch)
    pipe(**_inputs(cross_attention_kwargs={"scale": 1.0}))
    assert [c["kwargs"]["cross_attention_kwargs"] for c in calls] == [{"scale": 1.0}] * 3


def test_callback_raising_guidance_is_seen_by_the_run(pipe):
    def raise_guidance(p, i, t, tensors):
        p._guidance_scale += 1.0
        return tensors

    plain = pipe(**_inputs(guidance_scale=2.0)).frames
    steered = pipe(**_inputs(guidance_scale=2.0, callback_on_step_end=raise_guidance)).frames
    assert pipe.guidance_scale == 2.0 + pipe.num_timesteps
    assert np.abs(steered - plain).max() > 1e-4  # steps 1.. used the raised scale


def test_callback_turning_guidance_off_drops_the_unconditional_branch(pipe, monkeypatch):
    def guidance_off(p, i, t, tensors):
        p._guidance_scale = 1.0
        assert not p.do_classifier_free_guidance
        return tensors

    calls = _spy_unet(pipe, monkeypatch)
    pipe(**_inputs(guidance_scale=7.5, callback_on_step_end=guidance_off))
    assert [c["sample"].shape[0] for c in calls] == [2, 1, 1]


def test_num_timesteps_counts_the_steps_run(pipe):
    pipe(**_inputs(num_inference_steps=4))
    assert pipe.num_timesteps == 4
    pipe(**_inputs(num_inference_steps=6, source_video=[_frame(3)] * 4, strength=0.5))
    assert pipe.num_timesteps == 3  # round(0.5 * 6)


def test_interrupt_skips_the_remaining_steps(pipe, monkeypatch):
    seen = {}

    def stop_after_first(p, i, t, tensors):
        seen[i] = tensors["latents"].clone()
        p._interrupt = True
        return tensors

    calls = _spy_unet(pipe, monkeypatch)
    latents = pipe(**_inputs(output_type="latent", num_inference_steps=4, callback_on_step_end=stop_after_first)).frames
    assert len(calls) == 1 and list(seen) == [0]
    assert torch.equal(latents, seen[0])  # what the interrupted run returns is the latents of its last step


def test_given_latents_reproduce_the_seeded_run(pipe):
    seeded = pipe(**_inputs(seed=3)).frames
    noise = randn_tensor((1, C, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(3))
    given = pipe(**_inputs(seed=99, latents=noise)).frames
    np.testing.assert_array_equal(given, seeded)


def test_latents_of_the_wrong_shape_are_refused(pipe):
    with pytest.raises(BadInput, match=r"latents have shape \(1, 4, 2, 4, 4\)"):
        pipe(**_inputs(latents=torch.zeros(1, C, 2, SIZE // 8, SIZE // 8)))


def test_batched_prompts_with_num_videos_per_prompt_are_prompt_major(pipe):
    generators = [torch.Generator().manual_seed(k) for k in range(4)]
    batch = pipe(**_inputs(prompt=["a red ball rolls", "night falls"], num_videos_per_prompt=2,
                           generator=generators)).frames
    assert batch.shape == (4, 4, SIZE, SIZE, 3)
    assert np.abs(batch[0] - batch[1]).max() > 1e-3  # two videos of one prompt have their own noise
    # video k is prompt k // 2 with generator k, as if run alone
    third = pipe(**_inputs(prompt="night falls", generator=torch.Generator().manual_seed(2))).frames
    np.testing.assert_allclose(batch[2], third[0], atol=1e-4)


def test_list_of_generators_with_image_noise_matches_single_runs(pipe):
    generators = [torch.Generator().manual_seed(k) for k in (5, 6)]
    batch = pipe(**_inputs(prompt=["a red ball rolls"] * 2, image_noise=0.3, generator=generators)).frames
    for k, seed in enumerate((5, 6)):
        alone = pipe(**_inputs(image_noise=0.3, seed=seed)).frames
        np.testing.assert_allclose(batch[k], alone[0], atol=1e-4)
    noiseless = pipe(**_inputs(image_noise=0.0, seed=5)).frames
    assert np.abs(noiseless[0] - batch[0]).max() > 1e-3  # the image noise was applied


def test_list_of_unit_range_tensors_equals_uint8_frames(pipe):
    as_tensor = [torch.from_numpy(_frame(s)).permute(2, 0, 1).float() / 255.0 for s in (1, 7)]
    from_tensors = pipe(**_inputs(prompt=["a"] * 2, first_frame=as_tensor, generator=None,
                                  latents=torch.zeros(2, C, 4, 4, 4))).frames
    from_uint8 = pipe(**_inputs(prompt=["a"] * 2, first_frame=[_frame(1), _frame(7)], generator=None,
                                latents=torch.zeros(2, C, 4, 4, 4))).frames
    np.testing.assert_allclose(from_tensors, from_uint8, atol=1e-5)
    assert np.abs(from_tensors[0] - from_tensors[1]).max() > 1e-3  # each video got its own first frame


def test_is_a_stable_diffusion_mixin(pipe):
    assert isinstance(pipe, StableDiffusionMixin)


def test_freeu_changes_the_video_and_disable_restores_it(fresh_pipe):
    plain = fresh_pipe(**_inputs()).frames
    fresh_pipe.enable_freeu(s1=0.9, s2=0.2, b1=1.2, b2=1.4)
    freeu = fresh_pipe(**_inputs()).frames
    fresh_pipe.disable_freeu()
    restored = fresh_pipe(**_inputs()).frames
    assert freeu.shape == plain.shape
    assert np.abs(freeu - plain).max() > 1e-4
    np.testing.assert_array_equal(restored, plain)


def test_vae_slicing_keeps_the_video_and_disable_restores_it(fresh_pipe, monkeypatch):
    inputs = dict(prompt=["a red ball rolls"] * 2, output_type="np")
    plain = fresh_pipe(**_inputs(**inputs)).frames
    decoded_batches = []
    decode = fresh_pipe.vae.decoder.forward
    monkeypatch.setattr(fresh_pipe.vae.decoder, "forward",
                        lambda z, *a, **k: decoded_batches.append(len(z)) or decode(z, *a, **k))
    fresh_pipe.vae.enable_slicing()
    sliced = fresh_pipe(**_inputs(**inputs)).frames
    assert set(decoded_batches) == {1}  # one frame per decoder call
    fresh_pipe.vae.disable_slicing()
    decoded_batches.clear()
    restored = fresh_pipe(**_inputs(**inputs)).frames
    assert max(decoded_batches) > 1
    assert sliced.shape == plain.shape
    np.testing.assert_allclose(sliced, plain, atol=1e-5)
    np.testing.assert_array_equal(restored, plain)


def test_fused_qkv_projections_keep_the_video(fresh_pipe):
    plain = fresh_pipe(**_inputs()).frames
    fresh_pipe.fuse_qkv_projections()
    fused = fresh_pipe(**_inputs()).frames
    fresh_pipe.unfuse_qkv_projections()
    unfused = fresh_pipe(**_inputs()).frames
    np.testing.assert_allclose(fused, plain, atol=1e-4)
    np.testing.assert_allclose(unfused, plain, atol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"tau": 1.5}, "tau"),
        ({"prompt_embeds": torch.zeros(1, 77, 32)}, "not both"),
        ({"first_frame": None}, "first_frame"),
        ({"num_videos_per_prompt": 0}, "num_videos_per_prompt"),
        ({"generator": [torch.Generator()] * 3}, "3 generators"),
        ({"first_frame": [_frame(1)] * 3, "prompt": ["a", "b"]}, "3 given for 2 prompts"),
        ({"first_frame": "frame.png"}, "first frame"),
    ],
)
def test_check_inputs_errors_are_value_errors_and_pdedit_errors(pipe, overrides, match):
    with pytest.raises(ValueError, match=match) as info:
        pipe(**_inputs(**overrides))
    assert isinstance(info.value, PdeditError)


# Made once by running this exact call (build_tiny_pipeline(seed=0) saved and loaded, diffusers 0.42.1,
# torch 2.14.1, CPU) and printing frames[0, -1, -3:, -3:, -1]; diffusers pins image slices the same way.
# A change here means the sampler's numbers changed: check why before re-pinning.
EXPECTED_SLICE = np.array([0.5468, 0.4925, 0.6151, 0.6099, 0.4861, 0.5672, 0.6562, 0.5443, 0.5623])


def test_seeded_tiny_pipeline_output_slice_is_pinned(pipe):
    frames = pipe(**_inputs(seed=0)).frames
    assert frames.shape == (1, 4, SIZE, SIZE, 3)
    output_slice = frames[0, -1, -3:, -3:, -1].flatten()
    assert np.abs(output_slice - EXPECTED_SLICE).max() < 1e-3, output_slice.tolist()
