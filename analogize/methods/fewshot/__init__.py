"""fewshot: "Customize Your Own Paired Data via Few-shot Way" — the prior-free few-shot learner.

No pretrained weights: a VAE, M_x, M_e and a latent DiT M_y are trained together from the user's
pairs only, on pairs of pairs (n-source-to-n-target). See docs/methods/fewshot.md for the paper,
what we do and where we differ.

- config.py   FewShotConfig and PRESETS (tiny, cpu, gpu-256, gpu-512)
- model.py    the networks
- train.py    the pair-of-pairs sampler, the losses, the training task for the shared loop
- sample.py   the sampler and tiled any-size apply

The edit file holds the (EMA) weights of all four networks and `reference_count` reference pairs
(one crop of crop_size each, from pairs spread evenly over the training set): when applying, x_i
and y_i are training samples, so the edit must carry some, with their frame positions. Eight
crops cost little (8 × 2 × 3 × 128² floats at the cpu preset, 3 MB) and give the ensemble a
choice of subjects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...pairs import PairSet, sample_positioned_crop_pair
from ...training import cpu_has_native_bf16
from ..base import Edit, Method, MethodConfig, channels_first, to_model_range
from .config import PRESETS, FewShotConfig
from .model import FewShotModel
from .sample import edit_image
from .train import train

REFERENCE_SEED_OFFSET = 7919
"""Reference crops are drawn from seed + this, so they are not the first training crops."""


def reference_pairs(pairs: PairSet, config: FewShotConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`reference_count` crops (x_i, y_i), each (K, 3, S, S) in [-1, 1], and their frame positions
    (K, 2, S, S), from pairs spread evenly over the set (cycling, with fresh crops, when there are
    fewer pairs than references)."""
    rng = np.random.default_rng([config.seed, REFERENCE_SEED_OFFSET])
    chosen = np.linspace(0, len(pairs), config.reference_count, endpoint=False).astype(int)
    crops = [sample_positioned_crop_pair(pairs[int(index)], config.crop_size, rng) for index in chosen]
    before, after, position = zip(*crops)
    return to_model_range(list(before)), to_model_range(list(after)), channels_first(list(position))


def bf16_inference(mixed_precision: str, device: torch.device) -> bool:
    """Apply in bf16 where the edit trained in bf16 and the device computes it natively (a GPU, or a
    CPU with AVX512-BF16 or AMX); an emulated bf16 would be slower than float32."""
    return mixed_precision == "bf16" and (device.type == "cuda" or cpu_has_native_bf16())


class FewShotEdit(Edit):
    method = "fewshot"

    def __init__(self, config: FewShotConfig, model: FewShotModel, references_before: torch.Tensor,
                 references_after: torch.Tensor, references_position: torch.Tensor):
        super().__init__(config)
        # Channels-last: oneDNN's convolutions run fastest in that layout, in bf16 above all.
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.references_before = references_before
        self.references_after = references_after
        self.references_position = references_position

    def edit(self, image: np.ndarray, *, seed: int) -> np.ndarray:
        config = self.config
        # The seed picks the ensemble's references as well as every noise draw.
        chosen = np.sort(np.random.default_rng(seed).choice(config.reference_count, config.ensemble_size, replace=False))
        device = next(self.model.parameters()).device
        index = torch.from_numpy(chosen)
        return edit_image(
            self.model, self.references_before[index].to(device), self.references_after[index].to(device),
            self.references_position[index].to(device), image,
            tile=config.crop_size, overlap=config.tile_overlap, steps=config.sample_steps,
            start_noise=config.start_noise, seed=seed, bf16=bf16_inference(config.mixed_precision, device),
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            **{f"model.{name}": tensor for name, tensor in self.model.state_dict().items()},
            "references.before": self.references_before,
            "references.after": self.references_after,
            "references.position": self.references_position,
        }

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], config: MethodConfig) -> "FewShotEdit":
        model = FewShotModel(config)
        prefix = "model."
        state = {name[len(prefix):]: tensor for name, tensor in tensors.items() if name.startswith(prefix)}
        if config.affine_output:
            # Files from before the fitted start have no base: theirs was the identity.
            state.setdefault("vae.decoder.to_image.base", torch.eye(3, 4))
        model.load_state_dict(state)
        before = tensors["references.before"]
        # Files from before frame positions existed have none; their models never read them.
        position = tensors.get("references.position", torch.zeros(before.shape[0], 2, *before.shape[2:]))
        return cls(config, model, before, tensors["references.after"], position)


class FewShot(Method):
    name = "fewshot"
    summary = "few-shot learner (Customize Your Own Paired Data): VAE + flow net + latent DiT on pairs of pairs"
    config_class = FewShotConfig
    edit_class = FewShotEdit
    presets = PRESETS
    default_preset = "cpu"

    def fit(self, pairs: PairSet, config: MethodConfig, *, run_dir: Path | None, resume: bool,
            progress: bool) -> tuple[Edit, int]:
        model, result = train(pairs, config, run_dir=run_dir, resume=resume, progress=progress)
        return FewShotEdit(config, model, *reference_pairs(pairs, config)), result.steps


__all__ = ["FewShot", "FewShotConfig", "FewShotEdit", "PRESETS"]
