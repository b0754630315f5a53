"""Applying a trained few-shot model: plain functions, no state.

`sample` edits a batch of crop-sized query tiles with K reference pairs:

1. for every (query, reference) couple: [F, C] = M_x(x_i, x_j), tokens = M_e([F, C]);
2. first step, σ_0 = start_noise: noise the reference's y_i latent to y_i(σ_0) and let M_y predict
   the y_j latent; the K predictions of a query are averaged (the ensemble);
3. each later step, at the next lower σ of an even ladder: noise the current estimate to that level
   and predict again with the query as its own reference (x_i = x_j, so M_x gives the identity
   transform): the model then acts as a denoiser of its own estimate;
4. decode the estimate with the skips of the query's encoder features.

`edit_image` runs `sample` on overlapping tiles of an image of any size and blends them with
raised-cosine weights, so no seams show; an image smaller than a tile is mirrored out to one tile.
Random draws (latent noise, decoder noise) come from one generator seeded by `seed`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

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
    references_after: torch.Tensor,
    queries: torch.Tensor,
    *,
    steps: int,
    start_noise: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Edit `queries` (T, 3, S, S) with the K reference pairs (K, 3, S, S) each; all in [-1, 1].
    Returns (T, 3, S, S), unclipped."""
    tiles, count = queries.shape[0], references_before.shape[0]
    reference_latents, _, _ = model.vae.encoder(references_after)  # (K, c, h, w)
    query_means, _, query_skips = model.vae.encoder(queries)  # (T, c, h, w)
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
    return model.vae.decoder(estimate, query_skips, generator)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering [0, length), evenly spread, overlapping by at least
    `overlap`; the last tile ends at `length`. `length` is at least `tile`."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(k * (length - tile) / (count - 1)) for k in range(count)]


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile, 1) weights: 1 inside, falling to near 0 at the edges along a raised cosine
    `overlap` pixels wide, never exactly 0 (a pixel covered by one tile edge keeps its value)."""
    ramp = np.ones(tile, dtype=np.float32)
    if overlap > 0:
        rising = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        ramp[:overlap] = rising
        ramp[tile - overlap:] = np.minimum(ramp[tile - overlap:], rising[::-1])
    return (ramp[:, None] * ramp[None, :])[..., None]


def edit_image(
    model: FewShotModel,
    references_before: torch.Tensor,
    references_after: torch.Tensor,
    image: np.ndarray,
    *,
    tile: int,
    overlap: int,
    steps: int,
    start_noise: float,
    seed: int,
    tiles_per_batch: int = 16,
) -> np.ndarray:
    """Edit an (H, W, 3) float image in [0, 1] of any size, tile by tile; returns (H, W, 3) float32."""
    height, width = image.shape[:2]
    # Mirror small images out to a whole tile ("symmetric" works even for a 1-pixel side).
    padded = np.pad(image, ((0, max(0, tile - height)), (0, max(0, tile - width)), (0, 0)), mode="symmetric")
    padded_height, padded_width = padded.shape[:2]
    corners = [(top, left) for top in tile_starts(padded_height, tile, overlap)
               for left in tile_starts(padded_width, tile, overlap)]
    window = blend_window(tile, overlap)
    total = np.zeros((padded_height, padded_width, 3), dtype=np.float32)
    weights = np.zeros((padded_height, padded_width, 1), dtype=np.float32)
    device = references_before.device
    generator = torch.Generator(device=device).manual_seed(seed)
    for first in range(0, len(corners), tiles_per_batch):
        batch = corners[first:first + tiles_per_batch]
        crops = np.stack([padded[top:top + tile, left:left + tile] for top, left in batch])
        queries = torch.from_numpy(crops.transpose(0, 3, 1, 2).copy()).to(device) * 2.0 - 1.0
        edited = sample(model, references_before, references_after, queries,
                        steps=steps, start_noise=start_noise, generator=generator)
        edited = ((edited.float().cpu().permute(0, 2, 3, 1).numpy() + 1.0) / 2.0)  # (B, S, S, 3) in ~[0, 1]
        for (top, left), result in zip(batch, edited):
            total[top:top + tile, left:left + tile] += window * result
            weights[top:top + tile, left:left + tile] += window
    return np.clip(total / weights, 0.0, 1.0)[:height, :width].astype(np.float32)
