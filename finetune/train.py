"""The PixelDance training loop: one function, top to bottom (data, forward, loss, backward, step, log,
checkpoint), with accelerate doing devices, precision and distribution.

Run it as ``python -m finetune --config tiny.yaml`` or ``accelerate launch -m finetune --config ...``
(several CPU processes: ``ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m
finetune ...``, which is DDP over gloo, the code path of a multi-GPU run).
A run folder holds ``config.yaml``, ``logs/`` (tensorboard), ``checkpoints/step-NNNNNNN/`` (written
atomically; ``--resume latest`` continues from the newest), ``samples/`` (validation mp4 + preview
sheets) and ``final/`` (a PixelDancePipeline folder that ``pdedit generate`` and ``load_pipeline`` load).

Resuming replays exactly: sample ``k`` of the run is a function of (seed, k), and the diffusion noise of
step ``s`` is drawn from a generator seeded with (seed, s, rank), so an interrupted and resumed run takes
the same steps as an unbroken one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Dataset, Sampler

from finetune.config import Config
from finetune.data import ImageFolder, MovingShapes, SkipSample, VideoFolder
from finetune.recipe import Recipe, collate, diffusion_loss, draw_sample, make_c_image
from pdedit.errors import BadInput
from pdedit.pipeline import encode_frames, encode_video

logger = logging.getLogger(__name__)

__all__ = ["train", "build_model", "build_dataset", "latest_checkpoint", "learning_rate", "TrainingSamples"]

CHECKPOINT_PREFIX = "step-"


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


def build_model(config: Config):
    """The PixelDancePipeline to train: a tiny random one (latent or pixel space) or a saved folder."""
    from diffusers import DDIMScheduler

    from pdedit.models import PixelDanceUNet, build_tiny_pipeline, tiny_unet_config
    from pdedit.models.pixel_space import PixelSpaceVAE
    from pdedit.pipeline import PixelDancePipeline, load_pipeline

    m = config.model
    if m.init == "tiny":
        pipe = build_tiny_pipeline(seed=m.seed)
        if m.pixel_space or m.unet:
            channels = 3 if m.pixel_space else pipe.unet.config.out_channels
            unet_config = tiny_unet_config(latent_channels=channels)
            w, h = config.data.size
            if m.pixel_space:
                unet_config["sample_size"] = [h, w]
            unet_config.update(m.unet)
            torch.manual_seed(m.seed)
            pipe = PixelDancePipeline(
                vae=PixelSpaceVAE() if m.pixel_space else pipe.vae,
                text_encoder=pipe.text_encoder,
                tokenizer=pipe.tokenizer,
                unet=PixelDanceUNet(**unet_config),
                scheduler=pipe.scheduler,
                num_frames=config.data.num_frames,
                fps=8,
            )
    else:
        pipe = load_pipeline(m.init, device=None)  # accelerate places the modules
    overrides = dict(m.scheduler) if m.scheduler else {}
    overrides["prediction_type"] = m.prediction_type
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, **overrides)
    pipe.register_to_config(num_frames=config.data.num_frames)
    return pipe


def _add_lora(unet: torch.nn.Module, rank: int, alpha: float | None) -> torch.nn.Module:
    """Wrap the UNet with LoRA adapters on its attention projections; conv_in stays fully trainable."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=rank,
        lora_alpha=alpha or rank,
        target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        # conv_in's c_image half starts at zero after conversion from a text-to-video UNet: it has to learn.
        modules_to_save=["conv_in"],
    )
    return get_peft_model(unet, lora)


def enable_gradient_checkpointing(unet: torch.nn.Module) -> None:
    """Recompute each down/mid/up block in the backward pass instead of storing its activations.

    diffusers' 3D UNet blocks do not implement checkpointing, so each block's forward is wrapped here.
    """
    from torch.utils.checkpoint import checkpoint

    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    for block in blocks:
        forward = block.forward

        def wrapped(*args, _forward=forward, **kwargs):
            if torch.is_grad_enabled():
                return checkpoint(_forward, *args, use_reentrant=False, **kwargs)
            return _forward(*args, **kwargs)

        block.forward = wrapped


def encode_text(pipe, captions: list[str], device: torch.device) -> torch.Tensor:
    """CLIP embeddings (B, L, D) of captions, through the pipeline's own prompt encoder."""
    return pipe.encode_prompt(list(captions), device)


def _encode_batch(pipe, batch: dict[str, Any], recipe: Recipe, device: torch.device, weight_dtype: torch.dtype,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0, c_image, text) of a batch of raw clips or images: latents of the clip and of the instructions."""
    x0 = encode_video(pipe.vae, batch["video"].to(device, weight_dtype)).float()  # (B, C, F, h, w)
    if batch["is_image"]:
        c_image = torch.zeros_like(x0)  # images: text-to-image, no instructions (temporal bypass)
    else:
        f_first = encode_frames(pipe.vae, batch["first"].to(device, weight_dtype)).float()
        f_last = encode_frames(pipe.vae, batch["last"].to(device, weight_dtype)).float()
        c_image = make_c_image(f_first, f_last, batch["keep_last"].to(device), x0.shape[2],
                               recipe.image_noise, gen)  # (B, C, F, h, w)
    text = encode_text(pipe, batch["caption"], device)  # (B, L, D), frozen encoder
    return x0, c_image, text


# ---------------------------------------------------------------------------------------------
# Data: a resumable, rank-sharded stream of recipe samples
# ---------------------------------------------------------------------------------------------


def build_dataset(config: Config, held_out: bool = False):
    """The dataset named by ``config.data``; ``held_out`` gives validation clips (another shapes seed)."""
    d = config.data
    size = (int(d.size[0]), int(d.size[1]))
    if d.kind == "shapes":
        options = dict(d.shapes)
        seed = int(options.pop("seed", config.train.seed)) + (1_000_003 if held_out else 0)
        if "kinds" in options:
            options["kinds"] = tuple(options["kinds"])
        if "shape_size" in options:
            options["shape_size"] = tuple(options["shape_size"])
        return MovingShapes(num_frames=d.num_frames, size=size, seed=seed, **options)
    if d.kind == "videos":
        if d.root is None:
            raise BadInput("data.kind=videos needs data.root=FOLDER (and optionally data.manifest=FILE)")
        return VideoFolder(d.root, d.manifest, num_frames=d.num_frames, size=size, fps=d.fps, stride=d.stride,
                           crop_scale=tuple(d.crop_scale), seed=config.train.seed)
    raise BadInput(f"data.kind {d.kind!r} must be shapes or videos")


class TrainingSamples(Dataset):
    """Position ``k`` of the run -> one recipe sample; a pure function of (seed, k), so resumes replay.

    Positions walk through a fresh permutation of the dataset each epoch. A sample the dataset cannot
    give (corrupt, too short) is replaced by the next index, and counted in ``dataset.skipped``.
    """

    def __init__(self, dataset: Any, recipe: Recipe, seed: int):
        self.dataset, self.recipe, self.seed = dataset, recipe, seed
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return 2**62  # an endless stream; the sampler decides which positions are read

    def _index(self, position: int) -> int:
        """The dataset index at ``position``: the epoch's permutation, cached."""
        n = len(self.dataset)
        epoch = position // n
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(n))
        return int(self._perm[1][position % n])

    def __getitem__(self, position: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, position, 1])
        index = self._index(position)
        n = len(self.dataset)
        for attempt in range(n):
            try:
                item = self.dataset.load((index + attempt) % n, rng)
                break
            except SkipSample:
                continue
        else:
            raise BadInput(f"no usable sample in the dataset ({len(self.dataset.skipped)} skipped): check the data")
        return draw_sample(item, self.recipe, rng)


class PositionSampler(Sampler):
    """Yields this rank's sample positions from micro-batch ``start`` on: batch m of rank r is
    positions ``[(m * world + r) * B, (m * world + r + 1) * B)``."""

    def __init__(self, batch_size: int, rank: int, world: int, start: int = 0):
        self.batch_size, self.rank, self.world, self.start = batch_size, rank, world, start

    def __iter__(self) -> Iterator[int]:
        m = self.start
        while True:
            base = (m * self.world + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)
            m += 1

    def __len__(self) -> int:
        return 2**62


def _uses_images(seed: int, micro: int, image_ratio: float) -> bool:
    """Whether micro-batch ``micro`` is an image batch (joint training): a function of (seed, micro), so a
    resumed run replays the same choice, and the loaders' positions can be recounted from it."""
    return image_ratio > 0 and np.random.default_rng([seed, micro, 2]).random() < image_ratio


def _loader(samples: TrainingSamples, batch_size: int, rank: int, world: int, start: int, workers: int) -> Iterator:
    """An endless iterator of collated batches for this rank, from micro-batch ``start``."""
    loader = DataLoader(samples, batch_size=batch_size, sampler=PositionSampler(batch_size, rank, world, start),
                        collate_fn=collate, num_workers=workers, persistent_workers=workers > 0)
    return iter(loader)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``output_dir/checkpoints`` (temp folders ignored)."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return None
    done = [p for p in root.glob(f"{CHECKPOINT_PREFIX}*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]), default=None)


def _save_checkpoint(accelerator, output_dir: Path, step: int, ema, keep: int) -> Path:
    """Write the full training state to checkpoints/step-N atomically (temp folder, then rename)."""
    root = output_dir / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step:07d}"
    tmp = root / f".tmp-{CHECKPOINT_PREFIX}{step:07d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()  # every rank writes into tmp (its RNG state, DeepSpeed its partition) before the rename
    if accelerator.is_main_process:
        if ema is not None:
            from safetensors.torch import save_file

            save_file({f"shadow.{i}": p.detach().cpu().contiguous() for i, p in enumerate(ema.shadow_params)},
                      str(tmp / "ema.safetensors"))
            (tmp / "ema.json").write_text(json.dumps({"optimization_step": ema.optimization_step, "decay": ema.decay}))
        # trainer_state.json is written last: a folder without it is an interrupted write.
        (tmp / "trainer_state.json").write_text(json.dumps({"step": step}), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        done = sorted((p for p in root.glob(f"{CHECKPOINT_PREFIX}*") if (p / "trainer_state.json").is_file()),
                      key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _load_checkpoint(accelerator, folder: Path, ema) -> int:
    """Restore model, optimizer, LR schedule (and EMA) from ``folder``; returns its step."""
    accelerator.load_state(str(folder))
    if ema is not None and (folder / "ema.safetensors").is_file():
        from safetensors.torch import load_file

        shadow = load_file(str(folder / "ema.safetensors"))
        for i, p in enumerate(ema.shadow_params):
            p.data.copy_(shadow[f"shadow.{i}"].to(p.device))
        ema.optimization_step = json.loads((folder / "ema.json").read_text())["optimization_step"]
    return int(json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))["step"])


def _resolve_resume(resume: str | None, output_dir: Path) -> Path | None:
    """``latest`` -> the newest checkpoint (None when there is none yet); a path -> that checkpoint."""
    if resume is None:
        return None
    if resume == "latest":
        return latest_checkpoint(output_dir)
    path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise BadInput(f"--resume {resume} is not a checkpoint folder (no trainer_state.json): "
                       f"pass --resume latest or a folder under {output_dir / 'checkpoints'}")
    return path


def _save_final(pipe, unet, output_dir: Path) -> Path:
    """Save the trained pipeline to ``output_dir/final`` atomically (temp folder, then rename)."""
    final = output_dir / "final"
    tmp = Path(tempfile.mkdtemp(prefix=".final-", dir=output_dir))
    pipe.unet = unet
    pipe.save_pretrained(str(tmp), safe_serialization=True)
    old = output_dir / ".final-old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------------------
# Validation samples
# ---------------------------------------------------------------------------------------------


def _validate(pipe, unet, clips: list[dict[str, Any]], config: Config, step: int, output_dir: Path) -> Path:
    """Generate the validation clips with the current weights; write an mp4 and a preview sheet."""
    import cv2

    from pdedit.pipeline import to_uint8
    from pdedit.video import preview_sheet, write_video

    t = config.train
    pipe.unet = unet
    pipe.set_progress_bar_config(disable=True)
    w, h = config.data.size
    out = pipe(
        prompt=[c["caption"] for c in clips],
        first_frame=[c["frames"][0] for c in clips],
        last_frame=[c["frames"][-1] for c in clips],
        num_frames=config.data.num_frames,
        height=h,
        width=w,
        num_inference_steps=t.validation_steps,
        guidance_scale=t.validation_guidance,
        tau=t.validation_tau,
        generator=torch.Generator(device="cpu").manual_seed(t.seed),
        output_type="np",
    ).frames  # (B, F, H, W, 3) in [0, 1]
    # Each output frame shows the clips side by side: generated on top, the real clip below,
    # scaled up (nearest) so tiny training sizes are visible.
    scale = max(1, 128 // h)
    tiles = []
    for f in range(out.shape[1]):
        gen = np.concatenate([to_uint8(out[i : i + 1])[f] for i in range(len(clips))], axis=1)
        real = np.concatenate([c["frames"][f] for c in clips], axis=1)
        both = np.concatenate([gen, real], axis=0)
        tiles.append(cv2.resize(both, (both.shape[1] * scale, both.shape[0] * scale), interpolation=cv2.INTER_NEAREST))
    folder = output_dir / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    video = write_video(folder / f"step-{step:07d}.mp4", tiles, fps=pipe.config.fps, force=True)
    preview_sheet(tiles, folder / f"step-{step:07d}.png", columns=4, max_frames=len(tiles))
    return video


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


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
        unet = _add_lora(unet, t.lora_rank, t.lora_alpha)
    unet.train()
    params = [p for p in unet.parameters() if p.requires_grad]
    ema = None
    if t.ema_decay > 0:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(params, decay=t.ema_decay)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # the training objective's q(z_t | z_0)

    # 3. Optimizer (AdamW; the learning rate is set each step, see learning_rate)
    optimizer = torch.optim.AdamW(params, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    if ema is not None:
        ema.to(device)

    # 4. Resume
    step = 0
    checkpoint = _resolve_resume(resume, output_dir)
    if checkpoint is not None:
        step = _load_checkpoint(accelerator, checkpoint, ema)
        logger.info("resumed from %s at step %d", checkpoint, step)

    # 5. Data: positions continue where the checkpoint left off
    start = step * t.grad_accum
    # Each loader has served only its own micro-batches so far: recount them to continue where it stopped.
    image_batches = sum(_uses_images(t.seed, m, d.image_ratio) for m in range(start))
    if d.shards:  # the one choice of video source: latents cached by `python -m finetune.prepare`, or raw videos
        from finetune.shards import shard_source

        dataset, videos = shard_source(config, recipe, pipe, rank, world, start - image_batches)
    else:
        dataset = build_dataset(config)
        videos = _loader(TrainingSamples(dataset, recipe, t.seed), t.batch_size, rank, world, start - image_batches,
                         d.num_workers)
    images = None
    if d.image_ratio > 0:
        if d.images_root is None:
            raise BadInput("data.image_ratio > 0 needs data.images_root=FOLDER of images with captions")
        image_set = ImageFolder(d.images_root, d.images_manifest, size=tuple(d.size), seed=t.seed)
        images = _loader(TrainingSamples(image_set, recipe, t.seed + 1), t.batch_size, rank, world, image_batches,
                         d.num_workers)
    validation = []
    if accelerator.is_main_process:
        held_out = build_dataset(config, held_out=True)
        validation = [held_out[i] for i in range(min(t.validation_clips, len(held_out)))]
        if t.tensorboard:
            accelerator.init_trackers("finetune", config={"lr": t.lr, "batch_size": t.batch_size,
                                                          "eta": recipe.eta, "image_noise": recipe.image_noise})

    # 6. Training loop: one optimizer step per iteration, grad_accum micro-batches each
    last_loss, tick = float("nan"), time.perf_counter()
    while step < t.max_steps:
        loss_sum = 0.0
        for micro in range(t.grad_accum):
            m = step * t.grad_accum + micro
            use_images = images is not None and _uses_images(t.seed, m, d.image_ratio)
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
                        from finetune.shards import cached_inputs

                        x0, c_image, text = cached_inputs(batch, recipe, device, gen)
                    else:
                        x0, c_image, text = _encode_batch(pipe, batch, recipe, device, weight_dtype, gen)
                loss = diffusion_loss(unet, noise_scheduler, x0, c_image, text, gen)
                # backward (scaled so grad_accum micro-batches average)
                accelerator.backward(loss / t.grad_accum)
            loss_sum += loss.detach().float().item()
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
        last_loss = loss_sum / t.grad_accum

        # log
        if step % t.log_every == 0 or step == t.max_steps:
            mean_loss = accelerator.reduce(torch.tensor(last_loss, device=device), reduction="mean").item()
            elapsed, tick = time.perf_counter() - tick, time.perf_counter()
            skipped = len(getattr(dataset, "skipped", {}))
            logs = {"loss": mean_loss, "lr": lr, "skipped_videos": skipped,
                    "samples_per_s": t.log_every * t.grad_accum * t.batch_size * world / max(elapsed, 1e-9)}
            accelerator.log(logs, step=step)
            if accelerator.is_main_process:
                    logger.info("step %d: loss %.4f lr %.2e (%d videos skipped)", step, mean_loss, logs["lr"], skipped)

        # checkpoint
        if step % t.checkpoint_every == 0 or step == t.max_steps:
            _save_checkpoint(accelerator, output_dir, step, ema, t.keep_checkpoints)

        # validation samples
        if accelerator.is_main_process and validation and (
            (t.validate_every and step % t.validate_every == 0) or step == t.max_steps
        ):
            with _ema_weights(ema, params):
                _validate(pipe, _plain_unet(accelerator, unet), validation, config, step, output_dir)
            unet.train()

    # 7. Final pipeline folder (EMA weights when EMA is on; LoRA merged into the UNet)
    accelerator.wait_for_everyone()
    final = output_dir / "final"
    if accelerator.is_main_process:
        if ema is not None:
            ema.copy_to(params)
        final = _save_final(pipe, _plain_unet(accelerator, unet, merge=True), output_dir)
        logger.info("final model in %s (last loss %.4f)", final, last_loss)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final


@contextlib.contextmanager
def _ema_weights(ema, params: list[torch.nn.Parameter]):
    """Temporarily swap the EMA weights in (for validation samples); a no-op without EMA."""
    if ema is None:
        yield
        return
    ema.store(params)
    ema.copy_to(params)
    try:
        yield
    finally:
        ema.restore(params)


def _plain_unet(accelerator, unet: torch.nn.Module, merge: bool = False) -> torch.nn.Module:
    """The bare PixelDanceUNet behind accelerate's (and peft's) wrappers, in eval mode."""
    model = accelerator.unwrap_model(unet)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload() if merge else model.get_base_model()
    return model.eval()
