"""PixelDance sampler speed: pipeline overhead over its UNet calls, and against diffusers' T2V pipeline.

    python benchmarks/sampler.py                       # tiny model, CPU, 8 frames 64x64, 8 steps, CFG 7.5
    python benchmarks/sampler.py --steps 25 --repeats 15 --threads 2
    python benchmarks/sampler.py --modelscope          # where CUDA exists: ModelScope size, random weights

Figures (medians over --repeats runs, after a warm-up):
- overhead = pipeline wall time / time inside its UNet calls (the limit is 1.0); per step and whole call;
- vs T2V = our wall time / diffusers' TextToVideoSDPipeline wall time with the same UNet size (C in
  instead of 2C), VAE, text encoder, scheduler, steps, guidance, frames and size (below 1.0: faster);
- --modelscope: seconds per clip, peak GPU memory, and FLOP utilisation of the UNet (FLOPs counted
  with torch.utils.flop_counter, divided by time and by the card's peak dense bf16/fp16 rate).
The CPU of the test machine is shared: torch runs on --threads threads (default 1) so that the
figures measure this process rather than its neighbours.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch


def _timed_unet(unet: torch.nn.Module) -> list[float]:
    """Wrap ``unet.forward`` to record the seconds of each call (synchronising CUDA)."""
    times: list[float] = []
    forward = unet.forward

    def timed(*args, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = forward(*args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        return out

    unet.forward = timed
    return times


def _wall(fn) -> float:
    """Wall seconds of one ``fn()`` (synchronising CUDA)."""
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _t2v_pipeline(pipe):
    """diffusers' TextToVideoSDPipeline with a plain UNet3DConditionModel of the same size (C in)."""
    from diffusers import UNet3DConditionModel
    from diffusers.pipelines.deprecated.text_to_video_synthesis import TextToVideoSDPipeline

    config = {k: v for k, v in pipe.unet.config.items() if not k.startswith("_")}
    config["in_channels"] = config["out_channels"]
    torch.manual_seed(0)
    unet = UNet3DConditionModel(**config).to(pipe.unet.device)
    if unet.dtype != pipe.unet.dtype:
        unet.to(dtype=pipe.unet.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t2v = TextToVideoSDPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                    unet=unet, scheduler=pipe.scheduler)
    t2v.set_progress_bar_config(disable=True)
    return t2v


def overhead_and_t2v(pipe, *, frames: int, size: tuple[int, int], steps: int, guidance: float,
                     repeats: int, device: str) -> dict[str, float]:
    """Medians over interleaved runs: our wall time (np and latent output), its UNet-call time, T2V's.

    The runs of a repeat follow each other, and ratios are taken within a repeat, so a burst of
    load from other processes hits both sides of a ratio.
    """
    w, h = size
    first = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    last = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    unet_times = _timed_unet(pipe.unet)
    t2v = _t2v_pipeline(pipe)

    def ours(output_type: str):
        return lambda: pipe("a red ball rolls", first, last, num_frames=frames, height=h, width=w,
                            num_inference_steps=steps, guidance_scale=guidance, tau=0.5,
                            output_type=output_type, generator=torch.Generator().manual_seed(0))

    def theirs(output_type: str):
        return lambda: t2v("a red ball rolls", num_frames=frames, height=h, width=w, num_inference_steps=steps,
                           guidance_scale=guidance, output_type=output_type,
                           generator=torch.Generator(device).manual_seed(0))

    ours("np")(), theirs("np")()  # warm-up
    rows = []
    for k in range(repeats):
        # Who runs first alternates between repeats, so a drift in the neighbours' load favours neither side.
        if k % 2:
            t2v_s, t2v_latent_s = _wall(theirs("np")), _wall(theirs("latent"))
        unet_times.clear()
        ours_s = _wall(ours("np"))
        unet_s, calls = sum(unet_times), len(unet_times)
        unet_times.clear()
        latent_s = _wall(ours("latent"))
        latent_unet_s = sum(unet_times)
        if not k % 2:
            t2v_s, t2v_latent_s = _wall(theirs("np")), _wall(theirs("latent"))
        rows.append({"pipeline_s": ours_s, "pipeline_latent_s": latent_s, "unet_s": unet_s, "unet_calls": calls,
                     "t2v_s": t2v_s, "overhead": ours_s / unet_s, "overhead_latent": latent_s / latent_unet_s,
                     "vs_t2v": ours_s / t2v_s, "vs_t2v_latent": latent_s / t2v_latent_s})
    figures = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    # The spread of the ratio says how far the median can be trusted on a shared machine.
    figures["vs_t2v_q1"], _, figures["vs_t2v_q3"] = statistics.quantiles([r["vs_t2v"] for r in rows], n=4)
    return figures


def _peak_flops(device_name: str) -> float | None:
    """Peak dense fp16/bf16 tensor FLOP/s of known cards (vendor figures), None when unknown."""
    for key, flops in (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40", 181e12), ("A10", 125e12)):
        if key in device_name:
            return flops
    return None


def modelscope_figures(frames: int, size: int, steps: int, guidance: float, dtype: torch.dtype) -> None:
    """Seconds per clip, peak GPU memory and UNet FLOP utilisation at the ModelScope T2V size."""
    from diffusers import DDIMScheduler
    from torch.utils.flop_counter import FlopCounterMode

    from pdedit.model_init import build_tiny_pipeline
    from pdedit.models import PixelDanceUNet
    from pdedit.pipeline import PixelDancePipeline

    tiny = build_tiny_pipeline()
    # ModelScope text-to-video-ms-1.7b UNet config (damo-vilab), random weights, 2C = 8 in.
    unet = PixelDanceUNet(sample_size=32, in_channels=8, out_channels=4, attention_head_dim=64,
                          block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=1024,
                          layers_per_block=2, norm_num_groups=32)
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tiny.tokenizer), hidden_size=1024,
                                                intermediate_size=4096, num_hidden_layers=23,
                                                num_attention_heads=16, max_position_embeddings=77,
                                                bos_token_id=0, eos_token_id=1, pad_token_id=1))
    pipe = PixelDancePipeline(vae=vae, text_encoder=text_encoder, tokenizer=tiny.tokenizer, unet=unet,
                              scheduler=DDIMScheduler.from_config(tiny.scheduler.config), num_frames=frames)
    pipe.to("cuda", dtype)
    pipe.set_progress_bar_config(disable=True)
    params = sum(p.numel() for p in unet.parameters())
    latents = torch.randn(2, 8, frames, size // 8, size // 8, device="cuda", dtype=dtype)
    text = torch.randn(2, 77, 1024, device="cuda", dtype=dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(latents, 500, text)
    unet_flops = counter.get_total_flops()
    torch.cuda.reset_peak_memory_stats()
    figures = overhead_and_t2v(pipe, frames=frames, size=(size, size), steps=steps, guidance=guidance,
                               repeats=3, device="cuda")
    peak = torch.cuda.max_memory_allocated() / 2**30
    name = torch.cuda.get_device_name()
    unet_call_s = figures["unet_s"] / figures["unet_calls"]
    peak_rate = _peak_flops(name)
    print(f"\nModelScope size on {name} ({dtype}): UNet {params / 1e9:.2f}B parameters, {frames} frames "
          f"{size}x{size}, {steps} steps, CFG {guidance}")
    print(f"  seconds per clip       {figures['pipeline_s']:.2f} s (T2V pipeline {figures['t2v_s']:.2f} s, "
          f"ratio {figures['vs_t2v']:.3f})")
    print(f"  overhead               {figures['overhead']:.3f}")
    print(f"  peak GPU memory        {peak:.1f} GiB")
    print(f"  UNet FLOPs per call    {unet_flops / 1e12:.1f} TFLOP (batch 2), {unet_call_s * 1e3:.0f} ms "
          f"-> {unet_flops / unet_call_s / 1e12:.0f} TFLOP/s"
          + (f" = {unet_flops / unet_call_s / peak_rate:.0%} of peak" if peak_rate else ""))


def main() -> None:
    """Parse options, run the tiny-model CPU figures, and the ModelScope-size ones where asked."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="square frame side in pixels")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--modelscope", action="store_true", help="also run the ModelScope size on CUDA")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from pdedit.model_init import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    f = overhead_and_t2v(pipe, frames=args.frames, size=(args.size, args.size), steps=args.steps,
                         guidance=args.guidance, repeats=args.repeats, device="cpu")
    print(f"tiny model on CPU ({args.threads} thread(s)): {args.frames} frames {args.size}x{args.size}, "
          f"{args.steps} steps, CFG {args.guidance}, median of {args.repeats}")
    print(f"  pipeline (np output)   {f['pipeline_s']:.3f} s  = {f['pipeline_s'] / args.steps * 1e3:.1f} ms/step")
    print(f"  pipeline (latents)     {f['pipeline_latent_s']:.3f} s")
    print(f"  UNet calls             {f['unet_s']:.3f} s  ({f['unet_calls']} calls, "
          f"{f['unet_s'] / f['unet_calls'] * 1e3:.1f} ms each)")
    print(f"  overhead (whole call)  {f['overhead']:.3f}   (pipeline / its UNet calls; limit 1.0)")
    print(f"  overhead (no decode)   {f['overhead_latent']:.3f}   (output_type='latent')")
    print(f"  diffusers T2V          {f['t2v_s']:.3f} s")
    print(f"  ours / T2V             {f['vs_t2v']:.3f}   "
          f"(np output; quartiles {f['vs_t2v_q1']:.3f}-{f['vs_t2v_q3']:.3f})")
    print(f"  ours / T2V (latents)   {f['vs_t2v_latent']:.3f}   (ours also VAE-encodes the two instructions)")
    if args.modelscope:
        if torch.cuda.is_available():
            modelscope_figures(frames=16, size=256, steps=25, guidance=7.5, dtype=torch.float16)
        else:
            print("\n--modelscope: no CUDA device here; skipped")


if __name__ == "__main__":
    main()
