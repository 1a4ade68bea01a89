"""Cached training data: shards of VAE latents and CLIP text embeddings, and the stream that reads them.

``python -m finetune.prepare`` decodes, samples and crops each clip once, encodes it, and writes
``shard-NNNNN.safetensors`` files plus ``shards.json`` (the shard list, sample counts, skipped videos
and the settings the shards were made with). The trainer then never decodes a video nor runs the VAE
or the text encoder: ``shard_source`` is its data source when ``data.shards`` is set
(``finetune.data.video_batches`` chooses it).

Why safetensors shards rather than WebDataset tars: the project already keeps every tensor in
safetensors (no pickle); a shard is memory-mapped and read at any sample, so resuming at an exact
sample needs no rereading of the tar stream before it; and no further dependency is needed. A shard holds
``latents`` (N, C, F, h, w) and ``text`` (N, L, D) in float16, and its captions in the metadata.

The stream: each epoch the shard list is permuted (seeded); rank r takes every world-th shard, dataloader
worker w of W every W-th of those, reads each in a seeded order and passes the samples through a seeded
shuffle buffer. Everything is a function of (seed, rank, worker, sample count), so a resumed run skips
exactly the samples each worker had served (only their keys are replayed, no tensors are read). The
recipe's random choices (which of the last three frames, eta drop, text drop; the c_image noise in the
loop) stay per step: a shard holds all F latent frames of a clip.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from finetune.recipe import Recipe, draw_choices, make_c_image
from pdedit.errors import BadInput

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST", "shard_name", "vae_fingerprint", "write_shard", "read_manifest", "ShardStream",
           "collate_cached", "cached_inputs", "shard_source"]

MANIFEST = "shards.json"
EMPTY_TEXT = "empty_text.safetensors"  # the embedding of "" (text drop for classifier-free guidance)


def shard_name(index: int) -> str:
    """File name of shard ``index``."""
    return f"shard-{index:05d}.safetensors"


def vae_fingerprint(vae: torch.nn.Module) -> str:
    """A short hash of the VAE's weights: latents made by one VAE must not train a model with another."""
    h = hashlib.sha256()
    for name, tensor in sorted(vae.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def write_shard(path: Path, latents: torch.Tensor, text: torch.Tensor, captions: list[str],
                skipped: dict[str, str], rank: int = 0) -> None:
    """Write one shard atomically (temp file, then rename): a shard file that exists is complete."""
    from safetensors.torch import save_file

    from pdedit.video import atomic_path

    tensors = {"latents": latents.to(torch.float16).contiguous(), "text": text.to(torch.float16).contiguous()}
    meta = {"captions": json.dumps(captions), "skipped": json.dumps(skipped), "samples": str(len(captions)),
            "rank": str(rank)}  # the process that made it (prepare under accelerate launch)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The shards.json of a prepared folder; BadInput when it is absent (not prepared, or unfinished)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BadInput(f"data.shards {folder} has no {MANIFEST}: make the shards with "
                       f"`python -m finetune.prepare --config CONFIG --out {folder}` (rerun it to finish them)")
    return json.loads(path.read_text(encoding="utf-8"))


class ShardStream(IterableDataset):
    """An endless, shuffled stream of cached samples for one rank, from its ``start``-th sample on.

    With DataLoader workers, worker w of W serves batches w, w + W, ... of the rank (the DataLoader takes
    them in turn), so a resume at batch ``start`` tells each worker whose stream it continues and how many
    samples that stream had served.
    """

    def __init__(self, folder: str | Path, recipe: Recipe, seed: int, rank: int, world: int, batch_size: int,
                 start: int = 0, buffer_size: int = 256):
        self.folder, self.recipe, self.seed = Path(folder), recipe, seed
        self.rank, self.world, self.batch_size, self.start = rank, world, batch_size, start
        self.buffer_size = max(1, buffer_size)
        self.manifest = read_manifest(folder)
        self.counts = [int(s["samples"]) for s in self.manifest["shards"]]
        from safetensors.torch import load_file

        self.empty_text = load_file(str(self.folder / EMPTY_TEXT))["text"][0].float()  # (L, D)

    def _shards(self, epoch: int, worker: int, workers: int) -> list[int]:
        """This rank's and worker's shards in epoch ``epoch``."""
        order = np.random.default_rng([self.seed, epoch, 3]).permutation(len(self.counts))
        return [int(s) for s in order[self.rank :: self.world][worker::workers] if self.counts[s] > 0]

    def keys(self, worker: int = 0, workers: int = 1) -> Iterator[tuple[int, int]]:
        """The endless, seeded order of (shard, sample) keys this rank's worker serves."""
        if not self._shards(0, worker, workers):
            raise BadInput(f"{len(self.counts)} shards in {self.folder} cannot feed {self.world} processes x "
                           f"{workers} dataloader workers: prepare smaller shards (--shard-size) or use fewer workers")
        buffer: list[tuple[int, int]] = []
        rng = np.random.default_rng([self.seed, self.rank, worker, 4])
        epoch = 0
        while True:
            for shard in self._shards(epoch, worker, workers):
                for i in np.random.default_rng([self.seed, epoch, shard, 5]).permutation(self.counts[shard]):
                    if len(buffer) < self.buffer_size:
                        buffer.append((shard, int(i)))
                        continue
                    j = int(rng.integers(len(buffer)))
                    yield buffer[j]
                    buffer[j] = (shard, int(i))
            epoch += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from safetensors import safe_open

        info = get_worker_info()
        workers = info.num_workers if info is not None else 1
        # A DataLoader hands its batch 0 to worker 0; after a resume at batch `start` that batch is the one
        # the unbroken run's worker start % W served, so this worker continues that worker's stream, past
        # the samples it had served.
        worker = ((info.id if info is not None else 0) + self.start) % workers
        served = len(range(worker, self.start, workers)) * self.batch_size
        handles: dict[int, Any] = {}
        for k, (shard, i) in enumerate(self.keys(worker, workers)):
            if k < served:
                continue  # replaying keys only: no tensor is read for samples served before the resume
            if shard not in handles:
                if len(handles) > 8:  # the buffer spans a few shards; keep as many open
                    handles.pop(next(iter(handles)))
                handles[shard] = safe_open(str(self.folder / self.manifest["shards"][shard]["file"]), "pt")
            f = handles[shard]
            rng = np.random.default_rng([self.seed, self.rank, worker, k, 1])
            drop_text, last_index, keep_last = draw_choices(int(f.get_slice("latents").get_shape()[2]),
                                                            self.recipe, rng)
            yield {
                "latents": f.get_slice("latents")[i].float(),  # (C, F, h, w)
                "text": self.empty_text if drop_text else f.get_slice("text")[i].float(),  # (L, D)
                "last_index": last_index,
                "keep_last": keep_last,
            }


def collate_cached(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack cached samples into a batch."""
    return {
        "latents": torch.stack([s["latents"] for s in samples]),  # (B, C, F, h, w)
        "text": torch.stack([s["text"] for s in samples]),  # (B, L, D)
        "last_index": torch.tensor([s["last_index"] for s in samples]),
        "keep_last": torch.tensor([s["keep_last"] for s in samples], dtype=torch.bool),
        "is_image": False,
    }


def cached_inputs(batch: dict[str, Any], noise: tuple[float, float], device: torch.device,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0, c_image, text) of a cached batch: what the loop otherwise gets from the VAE and CLIP.

    ``noise`` is c_image's (scale, std), `finetune.recipe.c_image_noise`.
    """
    x0 = batch["latents"].to(device)  # (B, C, F, h, w)
    b = torch.arange(x0.shape[0], device=device)
    f_first = x0[:, :, 0]  # (B, C, h, w): the real first frame (§3.2)
    f_last = x0[b, :, batch["last_index"].to(device)]  # (B, C, h, w): one of the last three
    c_image = make_c_image(f_first, f_last, batch["keep_last"].to(device), x0.shape[2], noise[1], generator,
                           scale=noise[0])
    return x0, c_image, batch["text"].to(device)


class _Prepared:
    """What the loop's logs read from a dataset: the videos prepare skipped."""

    def __init__(self, manifest: dict[str, Any]):
        self.skipped = manifest.get("skipped", {})
        self.samples = int(manifest["samples"])


def shard_source(config, recipe: Recipe, pipe, rank: int, world: int, start: int) -> tuple[_Prepared, Iterator]:
    """The trainer's video source from ``config.data.shards``: checked against the run, from micro-batch ``start``."""
    d, t = config.data, config.train
    manifest = read_manifest(d.shards)
    made = manifest["settings"]
    if recipe.last_frame_transform != "none":
        raise BadInput(f"recipe.last_frame_transform={recipe.last_frame_transform} converts the last frame's "
                       "pixels each step, which cached latents no longer have: train it from raw videos")
    if made["num_frames"] != d.num_frames or list(made["size"]) != list(d.size):
        raise BadInput(f"shards in {d.shards} hold {made['num_frames']} frames of {made['size']}, the run wants "
                       f"{d.num_frames} of {list(d.size)}: prepare them again with this config")
    if made["vae"] != vae_fingerprint(pipe.vae):
        raise BadInput(f"shards in {d.shards} were encoded by another VAE (model.init {made['model']}): prepare "
                       "them again with this run's model")
    stream = ShardStream(d.shards, recipe, t.seed, rank, world, t.batch_size, start, d.shuffle_buffer)
    loader = DataLoader(stream, batch_size=t.batch_size, collate_fn=collate_cached, num_workers=d.num_workers,
                        persistent_workers=d.num_workers > 0)
    return _Prepared(manifest), iter(loader)
