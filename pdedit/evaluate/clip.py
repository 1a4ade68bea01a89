"""CLIPSIM (Wu et al., GODIVA 2021): the mean CLIP similarity of a clip's frames to its prompt.

The CLIP is a transformers folder (config, weights, tokenizer, image preprocessor) on local disk.
Published CLIPSIM figures on MSR-VTT are usually made with ViT-B/32 and given as the raw cosine
similarity averaged over frames (about 0.3), not scaled by 100.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdedit.errors import MissingModel

__all__ = ["CLIP_HINT", "ClipScorer", "load_clip"]

CLIP_WHAT = "CLIP (ViT-B/32 for published figures) for CLIPSIM"
CLIP_HINT = ("the usual model is openai/clip-vit-base-patch32: `hf download openai/clip-vit-base-patch32 "
             "--local-dir clip-vit-base-patch32`, then pass that folder")


@dataclass
class ClipScorer:
    """A CLIP model with its tokenizer and image preprocessor."""

    model: object
    tokenizer: object
    processor: object

    def similarity(self, frames: np.ndarray, prompt: str, batch: int = 32) -> float:
        """Mean cosine similarity between each uint8 frame (N, H, W, 3) and the prompt."""
        import torch

        device = next(self.model.parameters()).device
        text = self.tokenizer([prompt], padding="max_length", truncation=True, return_tensors="pt").to(device)
        sims = []
        with torch.no_grad():
            for i in range(0, len(frames), batch):
                pixels = self.processor(images=list(frames[i:i + batch]), return_tensors="pt")["pixel_values"]
                out = self.model(input_ids=text["input_ids"], attention_mask=text.get("attention_mask"),
                                 pixel_values=pixels.to(device))
                # image_embeds and text_embeds come normalised: their dot product is the cosine.
                sims.append((out.image_embeds @ out.text_embeds.T)[:, 0].double().cpu().numpy())
        return float(np.concatenate(sims).mean())


def load_clip(folder: str | os.PathLike | None, device: str = "cpu") -> ClipScorer:
    """A ClipScorer from a local transformers CLIP folder; MissingModel when it is absent or incomplete."""
    if folder is None:
        raise MissingModel(f"{CLIP_WHAT} needs a model folder: pass --clip DIR; {CLIP_HINT}")
    path = Path(folder)
    if not (path / "config.json").is_file():
        raise MissingModel(f"{CLIP_WHAT}: {path} is not a transformers model folder (no config.json); {CLIP_HINT}")
    if not (path / "preprocessor_config.json").is_file():
        raise MissingModel(f"{CLIP_WHAT}: {path} has no preprocessor_config.json (the image preprocessing); "
                           f"download the whole folder; {CLIP_HINT}")
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    from pdedit.model_folder import quiet_loading

    try:
        with quiet_loading():
            model = CLIPModel.from_pretrained(path, local_files_only=True, use_safetensors=None)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            processor = CLIPImageProcessor.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise MissingModel(f"{CLIP_WHAT}: {path} cannot be loaded ({str(err).splitlines()[0]}); {CLIP_HINT}") from None
    return ClipScorer(model.to(device).eval(), tokenizer, processor)
