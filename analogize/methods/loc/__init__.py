"""loc: LoRA of Change (Song et al.) — a hypernetwork turns one before/after pair into a LoRA for
a frozen InstructPix2Pix-style model, in one forward pass; no training per edit.

    analogize train-loc --data procedural --preset cpu -o HYPERNET     # once: train.py
    analogize learn PAIRS --method loc --hypernetwork HYPERNET -o EDIT  # one forward of H
    analogize apply EDIT photo.jpg -o out/                              # sampling with +Δ

- hypernetwork.py: H (ViT encoder over A and A′, 6-block decoder, one query per LoRA factor);
- lora.py: the generated LoRA applied to the frozen denoiser with a sign, without copying weights;
- data.py: training quads (procedural edits, folders of pairs, MagicBrush, manifests);
- train.py: the small base model for the tiny/cpu presets, then LoRA Reverse training;
- config.py: LocConfig and its presets.

Several pairs give the exact mean of their LoRAs' updates, ΔW = (1/n)·Σ up_i·down_i, as one LoRA
of rank n·r (lora.mean_lora). Applying samples InstructPix2Pix-style with +Δ: DDIM from noise
over the base model's grid with the photo's latent beside the noised one, optionally with image
guidance. Strength, strength maps and masks blend the result with the photo in pixel space
(Edit.apply), like the other pixel-output methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...backbones import Backbone, Level, load_backbone
from ...errors import AnalogizeError
from ...images import resize
from ...pairs import PairSet
from ...samplers import classifier_free, deterministic_sample
from ..base import Edit, Method, MethodConfig
from .config import PRESETS, SAMPLING_FIELDS, LocConfig
from .hypernetwork import LoraHypernetwork
from .lora import Factors, generated_lora, mean_lora
from .train import load_hypernetwork, lora_scale, to_tensor, train_loc

DOWN, UP = ".lora_A.weight", ".lora_B.weight"
"""The factors' names in an edit file: diffusers/peft's, so `analogize export` writes them as they are."""


@torch.no_grad()
def generate_lora(hypernetwork: LoraHypernetwork, pairs: PairSet, config: LocConfig) -> dict[str, torch.Tensor]:
    """One forward of H over all pairs as a batch; their mean LoRA, scale folded into `up`."""
    device = next(hypernetwork.parameters()).device
    side = (config.image_size, config.image_size)
    before = to_tensor([resize(pair.before, side) for pair in pairs]).to(device)
    after = to_tensor([resize(pair.after, side) for pair in pairs]).to(device)
    factors = hypernetwork(before, after)
    merged = mean_lora([{name: (down[i : i + 1], up[i : i + 1]) for name, (down, up) in factors.items()}
                        for i in range(len(pairs))])
    lora = {}
    for name, (down, up) in merged.items():
        lora[name + DOWN], lora[name + UP] = down[0].float().cpu(), (lora_scale(config) * up[0]).float().cpu()
    return lora


@torch.no_grad()
def sample(backbone: Backbone, query: torch.Tensor, factors: Factors, config: LocConfig, seed: int) -> torch.Tensor:
    """DDIM to the edited latent, the query's latent beside the noised one, the LoRA on: from noise,
    or (start_strength < 1) from the query's own latent noised to the first level kept.
    With image_guidance g ≠ 1: ε(∅) + g·(ε(query) − ε(∅)), ∅ = a zero image latent (InstructPix2Pix's)."""
    condition, levels = backbone.condition(""), backbone.levels(config.sample_steps)
    levels = levels[len(levels) - round(config.start_strength * len(levels)):]
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(query.shape, generator=generator).to(backbone.device)
    if config.start_strength < 1.0:
        clean = query * backbone.pipeline.vae.config.scaling_factor  # the query latent is kept unscaled
        latent = levels[0].noised(clean, latent)

    def model_output(noised: torch.Tensor, index: int, level: Level) -> torch.Tensor:
        output = backbone.predict(noised, level, condition, image_latent=query)
        if config.image_guidance == 1.0:
            return output
        unconditional = backbone.predict(noised, level, condition, image_latent=torch.zeros_like(query))
        return classifier_free(output, unconditional, config.image_guidance)

    with generated_lora(backbone.denoiser, factors):
        return deterministic_sample(backbone, latent, levels, model_output)


class LocEdit(Edit):
    """A generated LoRA: per target layer `NAME.lora_A.weight` (down, r × in) and
    `NAME.lora_B.weight` (up, out × r, scale folded in), plus the config naming the base model."""

    method = "loc"

    def __init__(self, config: LocConfig, lora: dict[str, torch.Tensor], backbone: Backbone | None = None):
        super().__init__(config)
        self.lora = lora
        self._backbone = backbone

    @property
    def backbone(self) -> Backbone:
        """The frozen base model, loaded on first use (edit files hold the LoRA only)."""
        if self._backbone is None:
            self._backbone = load_backbone(self.config)
        return self._backbone

    def factors(self) -> Factors:
        device = self.backbone.device
        names = [key[: -len(DOWN)] for key in self.lora if key.endswith(DOWN)]
        return {name: (self.lora[name + DOWN][None].to(device), self.lora[name + UP][None].to(device))
                for name in names}

    def edit(self, image: np.ndarray, *, seed: int) -> np.ndarray:
        backbone, side = self.backbone, self.config.resolution
        latent = sample(backbone, backbone.query_latent(image, side, side), self.factors(), self.config, seed)
        return backbone.decode_image(latent, *image.shape[:2])

    def loras(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"loc": dict(self.lora)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.lora)

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], config: MethodConfig) -> "LocEdit":
        if not tensors or any(not key.endswith((DOWN, UP)) for key in tensors):
            raise ValueError("expected LoRA factors named NAME.lora_A.weight / NAME.lora_B.weight")
        return cls(config, dict(tensors))


class Loc(Method):
    name = "loc"
    summary = ("LoRA of Change: a trained hypernetwork turns the pairs into a LoRA for an InstructPix2Pix "
               "model, one forward pass")
    needs = ("a hypernetwork folder from `analogize train-loc` (--hypernetwork DIR); training one needs the "
             "photo corpus (cpu preset: minutes here) or a downloaded InstructPix2Pix and a GPU (gpu presets)")
    pretrained_setting = "hypernetwork"
    config_class = LocConfig
    edit_class = LocEdit
    presets = PRESETS
    default_preset = "cpu"

    def fit(self, pairs: PairSet, config: MethodConfig, *, run_dir: Path | None, resume: bool,
            progress: bool) -> tuple[Edit, int]:
        if not config.hypernetwork:
            raise AnalogizeError("loc: give --hypernetwork DIR, a folder trained by "
                                 "`analogize train-loc --preset cpu -o DIR`")
        overrides: dict[str, Any] = {name: getattr(config, name) for name in SAMPLING_FIELDS}
        trained, hypernetwork, backbone = load_hypernetwork(Path(config.hypernetwork), overrides)
        return LocEdit(trained, generate_lora(hypernetwork, pairs, trained), backbone), 0


__all__ = ["Loc", "LocConfig", "LocEdit", "generate_lora", "sample", "train_loc"]
