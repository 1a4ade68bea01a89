"""``python -m finetune.prepare --config FILE --out DIR``: encode the training clips once, into shards.

Each clip of ``config.data`` is decoded, sampled and cropped once (the dataset's own frame sampling,
seeded by (train.seed, index) as a training run's first epoch would be), VAE-encoded and its caption
CLIP-encoded by the run's model (``model.init``); shards of ``--shard-size`` clips are written to DIR with
``shards.json`` (see ``finetune.shards``). Train on them with ``data.shards=DIR``.

Distributed: under ``accelerate launch`` rank r makes shards r, r + world, ...; resumable per shard (a
shard file that exists is complete, and is not made again); corrupt or short videos are skipped and
counted. The last process to finish writes shards.json.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
import torch

from pdedit.errors import BadInput, PdeditError

logger = logging.getLogger(__name__)

__all__ = ["prepare"]


def _encode_shard(pipe, dataset, indices: range, device: torch.device, chunk: int = 8):
    """Latents (N, C, F, h, w), text (N, L, D), captions and skipped videos of ``indices``."""
    from finetune.data import SkipSample
    from finetune.model import encode_text
    from finetune.recipe import to_tensor
    from pdedit.pipeline import encode_video

    latents, texts, captions = [], [], []
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        video = torch.stack([to_tensor(item["frames"]) for item in batch]).to(device, pipe.vae.dtype)  # (B, 3, F, H, W)
        latents.append(encode_video(pipe.vae, video).float().cpu())  # (B, C, F, h, w)
        texts.append(encode_text(pipe, [item["caption"] for item in batch], device).float().cpu())  # (B, L, D)
        captions.extend(item["caption"] for item in batch)
        batch.clear()

    for index in indices:
        try:
            batch.append(dataset[index])
        except SkipSample:
            continue  # counted in dataset.skipped
        if len(batch) == chunk:
            flush()
    if batch:
        flush()
    if not latents:
        return None, None, captions
    return torch.cat(latents), torch.cat(texts), captions


def prepare(config, out: str | Path, shard_size: int = 256, progress: bool = False) -> Path | None:
    """Make this process's shards of ``config.data`` in ``out``; returns shards.json when the last one is done.

    Args:
        config: a training config (finetune.config.Config): its data, model and train.seed are used.
        out: the shards folder (created if missing; its parent must exist).
        shard_size: clips per shard.
        progress: a bar over this process's shards on stderr.
    """
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from finetune.data import build_dataset
    from finetune.model import build_model, encode_text
    from finetune.shards import EMPTY_TEXT, MANIFEST, shard_name, vae_fingerprint, write_shard
    from pdedit.video import atomic_path

    # 1. Check the settings and the folder before any decoding.
    if shard_size < 1:
        raise BadInput(f"--shard-size {shard_size} must be 1 or more")
    if config.recipe.last_frame_transform != "none":
        raise BadInput("recipe.last_frame_transform converts pixels at each step; cached latents cannot: "
                       "prepare and train sketch tuning from raw videos")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"--out {out} is a file: give a folder for the shards")
    if not folder.resolve().parent.is_dir():
        raise BadInput(f"cannot create --out {out}: its parent folder does not exist")
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))  # as Accelerator reads it (pdedit.batch)
    dataset = build_dataset(config)  # reads the manifest: BadInput for a bad one, before any work
    folder.mkdir(exist_ok=True)

    # 2. The model that encodes: the run's own (VAE and text encoder are frozen in training).
    pipe = build_model(config)
    pipe.vae.to(state.device).eval()
    pipe.text_encoder.to(state.device).eval()
    fingerprint = vae_fingerprint(pipe.vae)
    d = config.data
    settings = {"num_frames": d.num_frames, "size": list(d.size), "fps": d.fps, "stride": d.stride,
                "crop_scale": list(d.crop_scale), "kind": d.kind, "root": d.root, "manifest": d.manifest,
                "seed": config.train.seed, "model": config.model.init, "vae": fingerprint, "dtype": "float16"}
    settings_file = folder / "settings.json"
    if settings_file.is_file() and json.loads(settings_file.read_text(encoding="utf-8")) != settings:
        raise BadInput(f"--out {out} holds shards made with other settings ({settings_file}): "
                       "use a new folder, or remove it to make them again")
    if state.is_main_process:
        with atomic_path(settings_file) as tmp:
            tmp.write_text(json.dumps(settings, indent=1), encoding="utf-8")
        if not (folder / EMPTY_TEXT).is_file():  # the text of a dropped caption (classifier-free guidance)
            with torch.no_grad(), atomic_path(folder / EMPTY_TEXT) as tmp:
                save_file({"text": encode_text(pipe, [""], state.device).float().cpu().contiguous()}, str(tmp))

    # 3. This rank's shards, skipping those an earlier run finished.
    n = len(dataset)
    count = (n + shard_size - 1) // shard_size
    mine = [s for s in range(state.process_index, count, state.num_processes)
            if not (folder / shard_name(s)).is_file()]
    for s in tqdm(mine, desc="shards", unit="shard", disable=not progress or not state.is_main_process,
                  file=sys.stderr):
        indices = range(s * shard_size, min(n, (s + 1) * shard_size))
        before = dict(dataset.skipped)
        with torch.no_grad():
            latents, text, captions = _encode_shard(pipe, dataset, indices, state.device)
        skipped = {k: v for k, v in dataset.skipped.items() if k not in before}
        if latents is None:  # every clip of the shard was skipped: an empty shard still marks it done
            latents, text = torch.zeros(0), torch.zeros(0)
        write_shard(folder / shard_name(s), latents, text, captions, skipped, state.process_index)
        logger.info("shard %d: %d clips, %d skipped", s, len(captions), len(skipped))

    # 4. The last process to finish lists the shards (idempotent, so two finishing together is harmless).
    files = [folder / shard_name(s) for s in range(count)]
    if not all(f.is_file() for f in files):
        return None
    from safetensors import safe_open

    shards, skipped = [], {}
    for f in files:
        with safe_open(str(f), "pt") as handle:
            meta = handle.metadata()
        shards.append({"file": f.name, "samples": int(meta["samples"])})
        skipped.update(json.loads(meta["skipped"]))
    manifest = {"settings": settings, "shards": shards, "samples": sum(s["samples"] for s in shards),
                "skipped": skipped, "clips": n}
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return folder / MANIFEST


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog="\b\nExample:\n  python -m finetune.prepare --config tiny --out shards/ data.shapes={length: 64}\n"
                      "  python -m finetune --config tiny data.shards=shards/ --max-steps 5")
@click.option("--config", "config_path", required=True, help="YAML config: a file or a name in finetune/configs.")
@click.option("--out", required=True, help="Shards folder (created if missing; rerun to finish it).")
@click.option("--shard-size", type=click.IntRange(1), default=256, show_default=True, help="Clips per shard.")
@click.option("-v", "--verbose", is_flag=True, help="Log progress (to stderr).")
@click.argument("overrides", nargs=-1)
def main(config_path: str, out: str, shard_size: int, verbose: bool, overrides: tuple[str, ...]) -> None:
    """Decode, crop and encode the training clips of a config once, into shards of cached latents.

    OVERRIDES are section.key=value, as for `python -m finetune`.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s")
    from finetune.config import load_config

    try:
        manifest = prepare(load_config(config_path, list(overrides)), out, shard_size, progress=True)
    except PdeditError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    if manifest is not None:
        summary = json.loads(manifest.read_text(encoding="utf-8"))
        click.echo(f"{summary['samples']} clips in {len(summary['shards'])} shards "
                   f"({len(summary['skipped'])} skipped): {manifest}")


if __name__ == "__main__":
    main()
