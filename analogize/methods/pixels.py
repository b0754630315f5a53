"""pixels: PIXELS (AAAI 2025; code amazon-science/PIXELS) — training-free editing of a source
image towards exemplars, with a per-pixel edit map, on any pretrained backbone (backbones.py).

Both latents are noised at every step of an img2img run with one fixed ε each (the exemplar's is
the img2img's own). With N steps and
thresholds τ_i = i/N, mask_i = [M > τ_i] and, before step i's denoising,

    step 0:  z = mask_0·z_s⁽⁰⁾ + (1 − mask_0)·z_e⁽⁰⁾
    step i:  z = mask_i·z_s⁽ⁱ⁾ + (1 − mask_i)·z

so a pixel with map value m stays locked to the (noised) source for its first m·N steps: white
keeps the source, black is an img2img of the exemplar, grey lets the model blend the two.

Several exemplars in one pass: each comes with its own map; its region is where that map is not
white, and inside its region the pixel follows that exemplar and that map (a later exemplar wins
where regions overlap). Outside every region the source is kept.

The sampler is `img2img` below, a plain function over the backbone with an optional `surgery`
hook; PIXELS is that hook. Without it the same function is the backbone's plain img2img, which is
what the benchmark compares against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones import Backbone, Level
from ..errors import AnalogizeError
from ..images import resize
from ..samplers import StepProgress, Surgery, classifier_free, deterministic_sample, step_progress


@dataclass
class Exemplar:
    image: np.ndarray
    """(H, W, 3) in [0, 1], aligned with the source (see `place`); resized to it if its size differs."""
    edit_map: np.ndarray | None = None
    """(h, w) or (h, w, 3) greyscale in [0, 1], any size: white keeps the source, black takes the
    exemplar. None: black everywhere (the whole image follows the exemplar)."""


def img2img_levels(backbone: Backbone, steps: int, strength: float) -> list[Level]:
    """The last `strength` of a `steps`-level grid (at least one level): what img2img runs."""
    return backbone.levels(steps)[steps - max(1, round(strength * steps)):]


def img2img(backbone: Backbone, start: torch.Tensor, noise: torch.Tensor, *, steps: int, strength: float,
            condition: dict[str, torch.Tensor], uncondition: dict[str, torch.Tensor] | None = None,
            guidance: float = 1.0, surgery: Surgery | None = None,
            progress: StepProgress | None = None) -> torch.Tensor:
    """Noise `start` (N, c, h, w) with `noise` to the level `strength` of the way up a
    `steps`-level grid and denoise back to 0 with the shared deterministic sampler.
    Classifier-free guidance when `uncondition` is given. `surgery` may replace the latent before
    each step; `progress` hears of each step."""
    levels = img2img_levels(backbone, steps, strength)

    def model_output(latent: torch.Tensor, index: int, level: Level) -> torch.Tensor:
        output = backbone.predict(latent, level, condition)
        if uncondition is None or guidance == 1.0:
            return output
        return classifier_free(output, backbone.predict(latent, level, uncondition), guidance)

    return deterministic_sample(backbone, levels[0].noised(start, noise), levels, model_output, surgery, progress)


def pixels_surgery(source: torch.Tensor, source_noise: torch.Tensor, edit_map: torch.Tensor, steps: int,
                   locked: list[torch.Tensor] | None = None) -> Surgery:
    """The PIXELS hook for an `img2img` of the exemplar over `steps` steps: before step i, pixels
    with map value above i/steps are set to the source latent (1, c, h, w) noised to that level with
    the fixed `source_noise`. At step 0 the rest is the exemplar noised by img2img itself. If
    `locked` is a list, each step's mask is appended to it (for inspection)."""

    def surgery(index: int, level: Level, latent: torch.Tensor) -> torch.Tensor:
        mask = (edit_map > index / steps).to(latent.dtype)
        if locked is not None:
            locked.append(mask)
        return mask * level.noised(source, source_noise) + (1 - mask) * latent

    return surgery


def combine(source: torch.Tensor, exemplars: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One exemplar latent and one map from several (latent, map) pairs, each acting in its region
    (where its map is below 1); the source and white everywhere else."""
    exemplar, edit_map = source.clone(), torch.ones_like(exemplars[0][1])
    for latent, own_map in exemplars:
        region = own_map < 1.0
        exemplar = torch.where(region, latent, exemplar)
        edit_map = torch.where(region, own_map, edit_map)
    return exemplar, edit_map


def to_latent_map(edit_map: np.ndarray | None, side_h: int, side_w: int, device: torch.device) -> torch.Tensor:
    """A greyscale map of any size -> (1, 1, h, w) at latent size (area-averaged)."""
    if edit_map is None:
        return torch.zeros(1, 1, side_h, side_w, device=device)
    grey = edit_map.mean(axis=2) if edit_map.ndim == 3 else edit_map
    tensor = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=(side_h, side_w), mode="area").clamp(0.0, 1.0).to(device)


def pixels_edit(backbone: Backbone, source: np.ndarray, exemplars: list[Exemplar], *, steps: int = 50,
                strength: float = 1.0, seed: int = 0, prompt: str = "", guidance: float = 1.0,
                progress: bool | StepProgress = False) -> np.ndarray:
    """Edit `source` (H, W, 3) towards the exemplars; returns an image of the source's size.
    `progress`: True draws a bar of the denoising steps on stderr, a function hears of each
    step as (done, total) (the web page's bar)."""
    if not exemplars:
        raise AnalogizeError("PIXELS needs at least one exemplar image; give --exemplar")
    if not 0.0 < strength <= 1.0:
        raise AnalogizeError(f"strength {strength} is outside (0, 1]; 1 runs all steps from noise")
    height, width = backbone.working_size(*source.shape[:2])
    source_latent = backbone.encode_image(source, height, width)
    side_h, side_w = source_latent.shape[-2:]
    pieces = [(backbone.encode_image(exemplar.image, height, width),
               to_latent_map(exemplar.edit_map, side_h, side_w, backbone.device)) for exemplar in exemplars]
    exemplar_latent, edit_map = combine(source_latent, pieces)
    generator = torch.Generator().manual_seed(seed)  # one fixed noise for each latent, for the whole run
    source_noise, exemplar_noise = (torch.randn(source_latent.shape, generator=generator).to(backbone.device)
                                    for _ in range(2))
    locked_steps = len(img2img_levels(backbone, steps, strength))
    condition = backbone.condition(prompt)
    uncondition = backbone.unconditional() if guidance != 1.0 else None
    with step_progress(progress, "PIXELS") as report:
        latent = img2img(
            backbone, exemplar_latent, exemplar_noise, steps=steps, strength=strength, condition=condition,
            uncondition=uncondition, guidance=guidance,
            surgery=pixels_surgery(source_latent, source_noise, edit_map, locked_steps), progress=report,
        )
    return backbone.decode_image(latent, *source.shape[:2])


def place(reference: np.ndarray, canvas: np.ndarray, *, scale: float = 1.0, left: int = 0,
          top: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Paste `reference`, scaled by `scale`, onto a copy of `canvas` (the source) with its top-left
    corner at (left, top); returns (aligned exemplar, edit map) of the canvas's size, the map black
    where the reference landed and white elsewhere. Parts falling outside the canvas are cut off."""
    if scale <= 0:
        raise AnalogizeError(f"placement scale {scale} must be above 0")
    height, width = canvas.shape[:2]
    new_height, new_width = max(1, round(reference.shape[0] * scale)), max(1, round(reference.shape[1] * scale))
    scaled = resize(reference, (new_width, new_height))
    exemplar, edit_map = canvas.copy(), np.ones((height, width), dtype=np.float32)
    top_in, left_in = max(0, top), max(0, left)
    bottom, right = min(height, top + new_height), min(width, left + new_width)
    if bottom <= top_in or right <= left_in:
        raise AnalogizeError(f"the reference placed at ({left}, {top}) with scale {scale} misses the "
                             f"{width}×{height} source; place it inside the image")
    exemplar[top_in:bottom, left_in:right] = scaled[top_in - top:bottom - top, left_in - left:right - left]
    edit_map[top_in:bottom, left_in:right] = 0.0
    return exemplar, edit_map
