"""pdedit.models: PixelDanceUNet (2C in, C out, temporal bypass for images), tiny config, T2V conversion."""

from __future__ import annotations

import time

import pytest
import torch
from diffusers import UNet3DConditionModel

from pdedit.models import PixelDanceUNet, convert_t2v_unet, tiny_unet_config

C = 4

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def _tiny_unet(seed: int = 0) -> PixelDanceUNet:
    torch.manual_seed(seed)
    return PixelDanceUNet(**tiny_unet_config()).eval()


def _text(batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 77, 32, generator=torch.Generator().manual_seed(3))


def _randomise_temporal_layers(unet: torch.nn.Module) -> None:
    """Overwrite every temporal conv / temporal attention weight (diffusers zero-inits some of them)."""
    names = ("temp_convs", "temp_attentions", "transformer_in")
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if any(part in name.split(".") for part in names):
                param.copy_(torch.randn_like(param) * 0.5)


def test_unet_maps_2c_input_to_c_output():
    unet = _tiny_unet()
    sample = torch.randn(2, 2 * C, 4, 8, 8)
    out = unet(sample, 10, _text(2)).sample
    assert out.shape == (2, C, 4, 8, 8)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_unet_c_image_keyword_equals_channel_concat():
    unet = _tiny_unet()
    z_t, c_image = torch.randn(1, C, 3, 8, 8), torch.randn(1, C, 3, 8, 8)
    with torch.no_grad():
        a = unet(z_t, 5, _text(), c_image=c_image).sample
        b = unet(torch.cat([z_t, c_image], dim=1), 5, _text()).sample
    assert torch.equal(a, b)


def test_unet_rejects_wrong_channel_counts():
    unet = _tiny_unet()
    with pytest.raises(ValueError, match="input channels"):
        unet(torch.randn(1, C, 2, 8, 8), 5, _text())
    with pytest.raises(ValueError, match="in_channels must be 2 x out_channels"):
        PixelDanceUNet(**{**tiny_unet_config(), "in_channels": C})


def test_temporal_weights_do_not_change_single_frame_output():
    unet = _tiny_unet()
    image = torch.randn(2, 2 * C, 1, 8, 8)
    video = torch.randn(2, 2 * C, 4, 8, 8)
    with torch.no_grad():
        image_before, video_before = unet(image, 50, _text(2)).sample, unet(video, 50, _text(2)).sample
        _randomise_temporal_layers(unet)
        image_after, video_after = unet(image, 50, _text(2)).sample, unet(video, 50, _text(2)).sample
    assert torch.equal(image_before, image_after)  # PixelDance §3: images bypass the temporal layers
    assert (video_before - video_after).abs().max() > 1e-3  # the same change does reach videos


def test_plain_diffusers_unet_would_not_bypass_temporal_layers():
    # Why the bypass exists: diffusers runs temporal layers on 1-frame inputs (FACTS.md).
    torch.manual_seed(0)
    plain = UNet3DConditionModel(**tiny_unet_config()).eval()
    image = torch.randn(1, 2 * C, 1, 8, 8)
    with torch.no_grad():
        before = plain(image, 50, _text()).sample
        _randomise_temporal_layers(plain)
        after = plain(image, 50, _text()).sample
    assert (before - after).abs().max() > 1e-3


def test_tiny_unet_runs_8_frame_16x16_latent_forward_under_a_second():
    # CPU time of one thread, not wall time: the test machine is shared, and wall time under load
    # measures the neighbours.
    unet = _tiny_unet()
    sample = torch.randn(1, 2 * C, 8, 16, 16)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            unet(sample, 10, _text())  # warm-up
            times = []
            for _ in range(3):
                start = time.process_time()
                unet(sample, 10, _text())
                times.append(time.process_time() - start)
    finally:
        torch.set_num_threads(threads)
    assert min(times) < 1.0


def _t2v_unet(seed: int = 1) -> UNet3DConditionModel:
    torch.manual_seed(seed)
    config = {**tiny_unet_config(), "in_channels": C, "out_channels": C}
    return UNet3DConditionModel(**config).eval()


def test_converted_unet_with_zero_c_image_matches_text_to_video_unet():
    t2v = _t2v_unet()
    converted = convert_t2v_unet(t2v).eval()
    z_t = torch.randn(2, C, 4, 8, 8)
    with torch.no_grad():
        expected = t2v(z_t, 300, _text(2)).sample
        got = converted(z_t, 300, _text(2), c_image=torch.zeros_like(z_t)).sample
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_conversion_widens_conv_in_with_zero_new_weights_and_keeps_the_rest():
    t2v = _t2v_unet()
    converted = convert_t2v_unet(t2v)
    assert isinstance(converted, PixelDanceUNet)
    assert converted.config.in_channels == 2 * C and converted.config.out_channels == C
    weight = converted.conv_in.weight  # (out, 2C, 3, 3)
    assert weight.shape[1] == 2 * C
    assert torch.equal(weight[:, :C], t2v.conv_in.weight)
    assert weight[:, C:].abs().sum() == 0
    old = t2v.state_dict()
    for name, value in converted.state_dict().items():
        if name != "conv_in.weight":
            assert torch.equal(value, old[name]), name


def test_conversion_rejects_a_unet_that_is_not_text_to_video():
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        convert_t2v_unet(_tiny_unet())


def test_unet_save_load_round_trip_keeps_class_bypass_and_output(tmp_path):
    unet = _tiny_unet()
    unet.save_pretrained(tmp_path / "unet")
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = PixelDanceUNet.from_pretrained(tmp_path / "unet", local_files_only=True).eval()
    sample = torch.randn(1, 2 * C, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(unet(sample, 7, _text()).sample, loaded(sample, 7, _text()).sample)
    assert type(loaded.transformer_in).__name__ == "ImageBypassTemporalAttention"
