"""Applying a trained few-shot model: plain functions, no state.

`sample` edits a batch of crop-sized query tiles with K reference pairs:

1. for every (query, reference) couple: [F, C] = M_x(x_i, x_j), tokens = M_e([F, C]);
2. first step, σ_0 = start_noise: noise the reference's y_i latent to y_i(σ_0) and let M_y predict
   the y_j latent; the K predictions of a query are averaged (the ensemble);
3. each later step, at the next lower σ of an even ladder: noise the current estimate to that level
   and predict again with the query as its own reference (x_i = x_j, so M_x gives the identity
   transform): the model then acts as a denoiser of its own estimate;
4. decode the estimate with the skips of the query's encoder features.

`edit_image` runs `sample` on overlapping tiles of an image of any size (tiling.py: raised-cosine
blending, each tile with its frame positions, so a frame-tied effect is drawn once over the frame).
Random draws (latent noise, decoder noise) come from one generator seeded by `seed`.
"""

from __future__ import annotations

import numpy as np
import torch

from ...tiling import edit_in_tiles
from ..base import channels_first, from_model_range, to_model_range
from .model import FewShotModel, noised


def noise_levels(steps: int, start_noise: float) -> list[float]:
    """σ for each step: `start_noise`, then evenly down towards 0 (which is never reached: a
    zero-noise step would not change the estimate)."""
    return [start_noise * (steps - step) / steps for step in range(steps)]


def denoise(model: FewShotModel, latent: torch.Tensor, sigma: float, query: torch.Tensor,
            condition: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One prediction of M_y from `latent` noised to `sigma`: (N, c, h, w) -> (N, c, h, w)."""
    levels = torch.full((latent.shape[0],), sigma, device=latent.device)
    noise = torch.randn(latent.shape, generator=generator, device=latent.device)
    return model.denoiser(noised(latent, levels, noise), levels, query, condition)


@torch.inference_mode()
def sample(
    model: FewShotModel,
    references_before: torch.Tensor,
    reference_latents: torch.Tensor,
    queries: torch.Tensor,
    queries_position: torch.Tensor,
    *,
    steps: int,
    start_noise: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Edit `queries` (T, 3, S, S) in [-1, 1], placed in their frame by `queries_position`
    (T, 2, S, S), with K references: x_i (K, 3, S, S) and the latents of y_i (K, c, h, w).
    Returns (T, 3, S, S), unclipped."""
    tiles, count = queries.shape[0], references_before.shape[0]
    query_means, _, query_skips = model.vae.encoder(queries, queries_position)  # (T, c, h, w)
    query_latents = model.query_latent(query_means)

    # Row t·K + k couples query t with reference k.
    condition = model.condition_tokens(
        model.flow(references_before.repeat(tiles, 1, 1, 1), queries.repeat_interleave(count, dim=0))
    )  # (T·K, tokens, D)
    sigmas = noise_levels(steps, start_noise)
    predictions = denoise(model, reference_latents.repeat(tiles, 1, 1, 1), sigmas[0],
                          query_latents.repeat_interleave(count, dim=0), condition, generator)
    estimate = predictions.unflatten(0, (tiles, count)).mean(dim=1)  # (T, c, h, w)
    if len(sigmas) > 1:
        own_condition = model.condition_tokens(model.flow(queries, queries))
        for sigma in sigmas[1:]:
            estimate = denoise(model, estimate, sigma, query_latents, own_condition, generator)
    return model.vae.decoder(estimate, query_skips, queries, generator)


def edit_image(
    model: FewShotModel,
    references_before: torch.Tensor,
    references_after: torch.Tensor,
    references_position: torch.Tensor,
    image: np.ndarray,
    *,
    tile: int,
    overlap: int,
    steps: int,
    start_noise: float,
    seed: int,
    bf16: bool = False,
    tiles_per_batch: int = 16,
) -> np.ndarray:
    """Edit an (H, W, 3) float image in [0, 1] of any size, tile by tile; returns (H, W, 3) float32.
    With `bf16` the networks run under bf16 autocast, as they trained under the `bf16` presets."""
    device = references_before.device
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        reference_latents, _, _ = model.vae.encoder(references_after, references_position)  # once per image

    def edit_tiles(crops: np.ndarray, positions: np.ndarray) -> np.ndarray:
        # Channels-last like the edit's model (FewShotEdit): oneDNN's fastest layout for convolutions.
        queries = to_model_range(crops).to(device, memory_format=torch.channels_last)
        queries_position = channels_first(positions).to(device, memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            edited = sample(model, references_before, reference_latents, queries, queries_position,
                            steps=steps, start_noise=start_noise, generator=generator)
        return from_model_range(edited)  # (B, S, S, 3)

    return edit_in_tiles(image, edit_tiles, tile=tile, overlap=overlap, tiles_per_batch=tiles_per_batch)
