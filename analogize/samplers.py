"""Samplers: plain functions over any denoiser, in the k-diffusion spirit.

A sampler never knows which network it drives. It is given the levels to walk (a `Backbone`'s
grid, noisiest first) and a `ModelOutput`: any function from (latent, step index, level) to the
model's output in its own parametrisation. Methods build that function (LoRAs switched per step,
extra input channels, classifier-free guidance) and keep the stepping itself in one place.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .backbones import Backbone, Level

ModelOutput = Callable[[torch.Tensor, int, Level], torch.Tensor]
"""(latent (N, c, h, w), step index, level) -> the denoiser's output for it."""
Surgery = Callable[[int, Level, torch.Tensor], torch.Tensor]
"""(step index, level, current latent) -> the latent to denoise at this step."""
CLEAN = Level(0.0, 1.0, 0.0)
"""The end of every grid: the clean image."""


@torch.no_grad()
def deterministic_sample(backbone: Backbone, latent: torch.Tensor, levels: list[Level], model_output: ModelOutput,
                         surgery: Surgery | None = None) -> torch.Tensor:
    """Walk `latent` down `levels` to a clean latent: at each level the model's (x̂_0, ε̂) are
    recombined at the next level, x_next = signal'·x̂_0 + noise'·ε̂ — DDIM (η = 0) for ε- and
    v-prediction, Euler for flow matching. `surgery` may replace the latent before each step."""
    for index, level in enumerate(levels):
        if surgery is not None:
            latent = surgery(index, level, latent)
        clean, noise = backbone.estimates(latent, model_output(latent, index, level), level)
        following = levels[index + 1] if index + 1 < len(levels) else CLEAN
        latent = following.noised(clean, noise)
    return latent


def classifier_free(conditional: torch.Tensor, unconditional: torch.Tensor, guidance: float) -> torch.Tensor:
    """u + s·(c − u): s = 1 is the conditional output itself, s > 1 pushes further from u."""
    return unconditional + guidance * (conditional - unconditional)
