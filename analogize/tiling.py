"""Editing an image of any size in overlapping tiles, for models trained on fixed-size crops.

`edit_in_tiles` cuts the image into tiles that overlap by at least `overlap` pixels, edits them
in batches, and blends them back with raised-cosine weights, so no seam shows where two tiles
meet. Each tile comes with its pixels' positions in the whole frame (`pairs.frame_position`),
so a model that learned a frame-tied effect (a vignette) from positioned crops draws it once over
the frame, not once per tile. An image smaller than a tile is mirrored out to one tile; the
mirrored pixels get positions beyond [-1, 1] and are cut away afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .pairs import frame_position

TileEditor = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(B, tile, tile, 3) crops in [0, 1] and their (B, tile, tile, 2) frame positions ->
(B, tile, tile, 3) edited crops."""


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


def edit_in_tiles(image: np.ndarray, edit_tiles: TileEditor, *, tile: int, overlap: int,
                  tiles_per_batch: int = 16) -> np.ndarray:
    """Edit an (H, W, 3) float image in [0, 1] tile by tile with `edit_tiles`; returns (H, W, 3)
    float32 clipped to [0, 1]."""
    height, width = image.shape[:2]
    # Mirror small images out to a whole tile ("symmetric" works even for a 1-pixel side).
    padded = np.pad(image, ((0, max(0, tile - height)), (0, max(0, tile - width)), (0, 0)), mode="symmetric")
    padded_height, padded_width = padded.shape[:2]
    corners = [(top, left) for top in tile_starts(padded_height, tile, overlap)
               for left in tile_starts(padded_width, tile, overlap)]
    window = blend_window(tile, overlap)
    total = np.zeros((padded_height, padded_width, 3), dtype=np.float32)
    weights = np.zeros((padded_height, padded_width, 1), dtype=np.float32)
    for first in range(0, len(corners), tiles_per_batch):
        batch = corners[first:first + tiles_per_batch]
        crops = np.stack([padded[top:top + tile, left:left + tile] for top, left in batch])
        positions = np.stack([frame_position(height, width, top, left, tile, tile) for top, left in batch])
        for (top, left), result in zip(batch, edit_tiles(crops, positions)):
            total[top:top + tile, left:left + tile] += window * result
            weights[top:top + tile, left:left + tile] += window
    return np.clip(total / weights, 0.0, 1.0)[:height, :width].astype(np.float32)
