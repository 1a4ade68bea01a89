"""The PixelDance training loop: one function, top to bottom (data, forward, loss, backward, step, log,
checkpoint), with accelerate doing devices, precision and distribution.

Run it as ``python -m finetune --config tiny.yaml`` or ``accelerate launch -m finetune --config ...``
(several CPU processes: ``ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m
finetune ...``, which is DDP over gloo, the code path of a multi-GPU run).
A run folder holds ``config.yaml``, ``logs/`` (tensorboard), ``checkpoints/step-NNNNNNN/`` (written
atomically; ``--resume latest`` continues from the newest), ``samples/`` (validation mp4 + preview
sheets) and ``final/`` (a PixelDancePipeline folder that ``pdedit generate`` and ``load_pipeline`` load).

What the loop uses lives beside it: the data stream in ``finetune.data`` (cached latents: ``finetune.shards``),
the model in ``finetune.model``, the recipe in ``finetune.recipe``, checkpoints in ``finetune.checkpoint``,
validation samples in ``finetune.validate``.

Resuming replays exactly: sample ``k`` of the run is a function of (seed, k), and the diffusion noise of
step ``s`` is drawn from a generator seeded with (seed, s, rank), so an interrupted and resumed run takes
the same steps as an unbroken one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from finetune.checkpoint import load_checkpoint, resolve_resume, save_checkpoint, save_final
from finetune.config import Config
from finetune.data import ImageFolder, TrainingSamples, build_dataset, make_loader, uses_images, video_batches
from finetune.model import add_lora, build_model, ema_weights, enable_gradient_checkpointing, encode_text, plain_unet
from finetune.recipe import Recipe, c_image_noise, diffusion_loss, make_c_image
from finetune.shards import cached_inputs
from finetune.validate import validate
from pdedit.errors import BadInput
from pdedit.pipeline import encode_frames, encode_video

logger = logging.getLogger(__name__)

__all__ = ["train", "learning_rate"]


def learning_rate(step: int, base: float, warmup: int) -> float:
    """Linear warmup over ``warmup`` steps, then constant (a function of the step, so resumes need no state)."""
    return base * min(1.0, (step + 1) / warmup) if warmup > 0 else base


def train(config: Config, resume: str | None = None) -> Path:
    """Train a PixelDance model as ``config`` says; returns the ``final`` pipeline folder.

    Args:
        config: the run (see finetune.config); ``config.train.output_dir`` receives everything.
        resume: None (fresh run), "latest" (newest checkpoint in the output folder, if any) or a
            checkpoint folder.
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import ProjectConfiguration
    from diffusers import DDPMScheduler

    t, d = config.train, config.data
    output_dir = Path(t.output_dir)
    recipe = Recipe(**dataclasses.asdict(config.recipe))  # RecipeConfig holds exactly Recipe's fields
    if t.max_steps < 1 or t.batch_size < 1 or t.grad_accum < 1:
        raise BadInput(f"train.max_steps ({t.max_steps}), batch_size ({t.batch_size}) and grad_accum "
                       f"({t.grad_accum}) must be >= 1")

    # 1. Accelerator: devices, precision, processes, trackers
    accelerator = Accelerator(
        mixed_precision=t.mixed_precision,
        log_with="tensorboard" if t.tensorboard else None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        # Image batches bypass the temporal layers, which then get no gradient in DDP.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=d.image_ratio > 0)],
    )
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    if accelerator.state.deepspeed_plugin is not None:
        # DeepSpeed sizes its engine from the micro-batch, which it otherwise reads from a prepared DataLoader
        # (the loop's loaders are its own, never prepared), and accumulates over its own count of micro-batches.
        ds = accelerator.state.deepspeed_plugin.deepspeed_config
        if ds.get("gradient_accumulation_steps") not in ("auto", t.grad_accum):
            raise BadInput(f"the DeepSpeed config accumulates {ds['gradient_accumulation_steps']} micro-batches but "
                           f"train.grad_accum is {t.grad_accum}: make them equal")
        ds.update(train_micro_batch_size_per_gpu=t.batch_size, gradient_accumulation_steps=t.grad_accum)
        ds.pop("train_batch_size", None)  # DeepSpeed derives it: micro-batch x accumulation x its world size
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(t.mixed_precision, torch.float32)

    # 2. Model: a trainable UNet; VAE and text encoder frozen
    pipe = build_model(config)
    unet = pipe.unet
    pipe.vae.requires_grad_(False).to(device)
    if weight_dtype != torch.float32:
        pipe.vae.to(dtype=weight_dtype)
    pipe.text_encoder.requires_grad_(False).to(device)
    if t.gradient_checkpointing:
        enable_gradient_checkpointing(unet)
    if t.lora_rank > 0:
        unet = add_lora(unet, t.lora_rank, t.lora_alpha)
    unet.train()
    params = [p for p in unet.parameters() if p.requires_grad]
    ema = None
    if t.ema_decay > 0:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(params, decay=t.ema_decay)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # the training objective's q(z_t | z_0)
    c_noise = c_image_noise(recipe, noise_scheduler)  # (scale, std) of the perturbation of c_image

    # 3. Optimizer (AdamW; the learning rate is set each step, see learning_rate)
    optimizer = torch.optim.AdamW(params, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    if ema is not None:
        ema.to(device)

    # 4. Resume
    step = 0
    checkpoint = resolve_resume(resume, output_dir)
    if checkpoint is not None:
        step = load_checkpoint(accelerator, checkpoint, ema)
        logger.info("resumed from %s at step %d", checkpoint, step)

    # 5. Data: positions continue where the checkpoint left off
    start = step * t.grad_accum
    # Each loader has served only its own micro-batches so far: recount them to continue where it stopped.
    image_batches = sum(uses_images(t.seed, m, d.image_ratio) for m in range(start))
    # raw videos (data.kind), or latents cached by `python -m finetune.prepare` (data.shards)
    dataset, videos = video_batches(config, recipe, pipe, rank, world, start - image_batches)
    images = None
    if d.image_ratio > 0:
        if d.images_root is None:
            raise BadInput("data.image_ratio > 0 needs data.images_root=FOLDER of images with captions")
        image_set = ImageFolder(d.images_root, d.images_manifest, size=tuple(d.size), seed=t.seed)
        images = make_loader(TrainingSamples(image_set, recipe, t.seed + 1), t.batch_size, rank, world,
                             image_batches, d.num_workers)
    validation = []
    if accelerator.is_main_process:
        held_out = build_dataset(config, held_out=True)
        validation = [held_out[i] for i in range(min(t.validation_clips, len(held_out)))]
        if t.tensorboard:
            accelerator.init_trackers("finetune", config={"lr": t.lr, "batch_size": t.batch_size,
                                                          "eta": recipe.eta, "image_noise": c_noise[1]})

    # 6. Training loop: one optimizer step per iteration, grad_accum micro-batches each
    tick, mean_loss = time.perf_counter(), float("nan")
    while step < t.max_steps:
        loss_sum = torch.zeros((), device=device)  # kept on the device: .item() (a GPU sync) only when logging
        for micro in range(t.grad_accum):
            m = step * t.grad_accum + micro
            use_images = images is not None and uses_images(t.seed, m, d.image_ratio)
            batch = next(images if use_images else videos)
            # Noise, timesteps and dropout (diffusers' temporal convs have dropout 0.1) from (seed,
            # micro-batch, rank): a resumed run draws exactly what the unbroken run drew.
            micro_seed = int(np.random.default_rng([t.seed, m, rank]).integers(2**62))
            torch.manual_seed(micro_seed)
            gen = torch.Generator(device=device).manual_seed(micro_seed)
            sync = micro == t.grad_accum - 1
            with contextlib.ExitStack() as stack:
                if not sync:
                    stack.enter_context(accelerator.no_sync(unet))
                stack.enter_context(accelerator.autocast())
                # forward: latents of the clip and of the instructions, c_image, text
                with torch.no_grad():
                    if "latents" in batch:  # cached by finetune.prepare: no decoding, VAE or CLIP here
                        x0, c_image, text = cached_inputs(batch, c_noise, device, gen)
                    else:
                        x0 = encode_video(pipe.vae, batch["video"].to(device, weight_dtype)).float()  # (B, C, F, h, w)
                        if batch["is_image"]:
                            c_image = torch.zeros_like(x0)  # images: text-to-image, no instructions (temporal bypass)
                        else:
                            f_first = encode_frames(pipe.vae, batch["first"].to(device, weight_dtype)).float()
                            f_last = encode_frames(pipe.vae, batch["last"].to(device, weight_dtype)).float()
                            c_image = make_c_image(f_first, f_last, batch["keep_last"].to(device), x0.shape[2],
                                                   c_noise[1], gen, scale=c_noise[0])  # (B, C, F, h, w)
                        text = encode_text(pipe, batch["caption"], device)  # (B, L, D), frozen encoder
                loss = diffusion_loss(unet, noise_scheduler, x0, c_image, text, gen)
                # backward (scaled so grad_accum micro-batches average)
                accelerator.backward(loss / t.grad_accum)
            loss_sum += loss.detach().float()
        # step
        if t.max_grad_norm > 0:
            accelerator.clip_grad_norm_(params, t.max_grad_norm)
        lr = learning_rate(step, t.lr, t.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(params)
        step += 1

        # log (this step's loss, averaged over its micro-batches and the ranks)
        if step % t.log_every == 0 or step == t.max_steps:
            mean_loss = accelerator.reduce(loss_sum / t.grad_accum, reduction="mean").item()
            elapsed, tick = time.perf_counter() - tick, time.perf_counter()
            skipped = len(getattr(dataset, "skipped", {}))
            logs = {"loss": mean_loss, "lr": lr, "skipped_videos": skipped,
                    "samples_per_s": t.log_every * t.grad_accum * t.batch_size * world / max(elapsed, 1e-9)}
            accelerator.log(logs, step=step)
            if accelerator.is_main_process:
                logger.info("step %d: loss %.4f lr %.2e (%d videos skipped)", step, mean_loss, logs["lr"], skipped)

        # checkpoint
        if step % t.checkpoint_every == 0 or step == t.max_steps:
            save_checkpoint(accelerator, output_dir, step, ema, t.keep_checkpoints)

        # validation samples
        if accelerator.is_main_process and validation and (
            (t.validate_every and step % t.validate_every == 0) or step == t.max_steps
        ):
            with ema_weights(ema, params):
                validate(pipe, plain_unet(accelerator, unet), validation, config, step, output_dir)
            unet.train()

    # 7. Final pipeline folder (EMA weights when EMA is on; LoRA merged into the UNet)
    accelerator.wait_for_everyone()
    final = output_dir / "final"
    if accelerator.is_main_process:
        if ema is not None:
            ema.copy_to(params)
        final = save_final(pipe, plain_unet(accelerator, unet, merge=True), output_dir)
        logger.info("final model in %s (last logged loss %.4f)", final, mean_loss)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final
