"""Samplers: plain functions over any denoiser, in the k-diffusion spirit.

A sampler never knows which network it drives. It is given the levels to walk (a `Backbone`'s
grid, noisiest first) and a `ModelOutput`: any function from (latent, step index, level) to the
model's output in its own parametrisation. Methods build that function (LoRAs switched per step,
extra input channels, classifier-free guidance) and keep the stepping itself in one place.

Progress is a callback, `StepProgress`, called after each step; `step_progress` turns a caller's
`progress` setting (True: a tqdm bar; a function: itself, e.g. the web page's bar) into one, so
the sampler itself never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from .backbones import Backbone, Level

ModelOutput = Callable[[torch.Tensor, int, Level], torch.Tensor]
"""(latent (N, c, h, w), step index, level) -> the denoiser's output for it."""
Surgery = Callable[[int, Level, torch.Tensor], torch.Tensor]
"""(step index, level, current latent) -> the latent to denoise at this step."""
StepProgress = Callable[[int, int], None]
"""(steps done, steps in all): called after each step of a long loop."""
CLEAN = Level(0.0, 1.0, 0.0)
"""The end of every grid: the clean image."""


@contextmanager
def step_progress(progress: bool | StepProgress | None, desc: str) -> Iterator[StepProgress | None]:
    """The callback for a loop's `progress` setting: True draws a tqdm bar on stderr (tqdm.auto:
    a widget in Jupyter), removed when the loop ends, since it is a part of a longer job (a photo,
    a batch); a function is used as it is; False or None reports nothing."""
    if callable(progress) or not progress:
        yield progress or None
        return
    from tqdm.auto import tqdm

    with tqdm(desc=desc, unit="step", leave=False) as bar:
        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield advance


@torch.no_grad()
def deterministic_sample(backbone: Backbone, latent: torch.Tensor, levels: list[Level], model_output: ModelOutput,
                         surgery: Surgery | None = None, progress: StepProgress | None = None) -> torch.Tensor:
    """Walk `latent` down `levels` to a clean latent: at each level the model's (x̂_0, ε̂) are
    recombined at the next level, x_next = signal'·x̂_0 + noise'·ε̂ — DDIM (η = 0) for ε- and
    v-prediction, Euler for flow matching. `surgery` may replace the latent before each step;
    `progress` hears of each step taken."""
    for index, level in enumerate(levels):
        if surgery is not None:
            latent = surgery(index, level, latent)
        clean, noise = backbone.estimates(latent, model_output(latent, index, level), level)
        following = levels[index + 1] if index + 1 < len(levels) else CLEAN
        latent = following.noised(clean, noise)
        if progress is not None:
            progress(index + 1, len(levels))
    return latent


def classifier_free(conditional: torch.Tensor, unconditional: torch.Tensor, guidance: float) -> torch.Tensor:
    """u + s·(c − u): s = 1 is the conditional output itself, s > 1 pushes further from u."""
    return unconditional + guidance * (conditional - unconditional)
