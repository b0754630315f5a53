"""Training: pairs of pairs, the paper's losses, and the shared loop.

Each training sample is two of the user's pairs, (x_i, y_i) and (x_j, y_j), drawn independently
with replacement ("n-source-to-n-target", n = 2): m pairs give m² ordered samples. Both are random
crops; only the j side is augmented (flip, small affine, optionally colour jitter), as in the paper.
The model learns to carry the transformation x_i → x_j over to y_i → y_j:

    [F, C] = M_x(x_i, x_j)                  loss_flow  = MSE(T_c(T_s(x_i)), x_j)
    ŷ_j    = dec(M_y(y_i(σ), σ, x_j, M_e([F, C])), skips(x_j))
                                            loss_pixel = L1(ŷ_j, y_j), loss_frequency = FFL(ŷ_j, y_j)
                                            loss_latent = MSE(M_y(...), enc(y_j))
    VAE                                     loss_vae = L1(dec(z ~ q(z | y_j), skips(x_j)), y_j) + KL

with y_i(σ) = (1 − σ)·enc(y_i) + σ·ε and σ ~ U(0, 1). Every part is trained at once by one AdamW.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from ...pairs import Augmentation, PairSet, sample_colors, sample_positioned_crop_pair
from ...training import TrainingResult, run_training
from ..base import channels_first, to_model_range
from .config import FewShotConfig
from .model import FewShotModel

MAX_GRADIENT_NORM = 1.0
"""Gradients are clipped to this norm, the usual guard against the loss spikes of transformers
trained from scratch (a spike would stay in the EMA for many steps). Not tuned."""


COLOR_FIT_SAMPLES = 200_000
"""Pixels (drawn from all pairs) the affine output's starting colour transform is fitted to: 12
unknowns, so far more than enough, in well under a second."""


def pair_indices(count: int, batch_size: int, rng: np.random.Generator, n_to_n: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) of `batch_size` pairs of pairs, each drawn uniformly with replacement from
    `count` pairs; without `n_to_n`, j = i (one-source-to-one-target)."""
    first = rng.integers(count, size=batch_size)
    second = rng.integers(count, size=batch_size) if n_to_n else first.copy()
    return first, second


def draw_batch(pairs: PairSet, config: FewShotConfig, rng: np.random.Generator,
               augmentation: Augmentation) -> dict[str, torch.Tensor]:
    """One batch drawn from `rng` alone: x_i, y_i, x_j, y_j (N, 3, S, S) in [-1, 1], the frame
    positions of the i and j crops (N, 2, S, S), noise levels σ (N,) and latent noise ε
    (N, c, S/d, S/d)."""
    size = config.crop_size
    first, second = pair_indices(len(pairs), config.batch_size, rng, config.n_to_n)
    x_i, y_i, x_j, y_j, position_i, position_j = [], [], [], [], [], []
    for i, j in zip(first, second):
        target = sample_positioned_crop_pair(pairs[int(j)], size, rng, augmentation)
        # Without n-to-n the very same crop is on both sides: M_x and M_y learn x_i -> x_i, y_i -> y_i.
        source = sample_positioned_crop_pair(pairs[int(i)], size, rng) if config.n_to_n else target
        for side, crop in ((x_i, source[0]), (y_i, source[1]), (position_i, source[2]),
                           (x_j, target[0]), (y_j, target[1]), (position_j, target[2])):
            side.append(crop)
    latent_side = size // config.latent_downsampling
    return {
        "x_i": to_model_range(x_i), "y_i": to_model_range(y_i),
        "x_j": to_model_range(x_j), "y_j": to_model_range(y_j),
        "position_i": channels_first(position_i), "position_j": channels_first(position_j),
        "sigma": torch.from_numpy(rng.uniform(0.0, 1.0, size=config.batch_size).astype(np.float32)),
        "noise": torch.from_numpy(rng.standard_normal(
            (config.batch_size, config.latent_channels, latent_side, latent_side)).astype(np.float32)),
    }


def fit_color_transform(before: np.ndarray, after: np.ndarray) -> torch.Tensor:
    """The affine colour transform [A | b] (3, 4) that maps `before` colours (P, 3) to `after`
    colours (P, 3), both in [-1, 1], with the least squared error."""
    design = np.concatenate([before, np.ones((len(before), 1), before.dtype)], axis=1)  # (P, 4)
    solution, *_ = np.linalg.lstsq(design.astype(np.float64), after.astype(np.float64), rcond=None)  # (4, 3)
    return torch.from_numpy(solution.T.astype(np.float32))


def focal_frequency_loss(prediction: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """Focal frequency loss (Jiang et al. 2021): the squared distance of the 2-D spectra, each
    frequency weighted by |difference|^α scaled to [0, 1] per image and channel, with no gradient
    through the weight, so the frequencies the model gets most wrong count most."""
    difference = torch.fft.fft2(prediction.float(), norm="ortho") - torch.fft.fft2(target.float(), norm="ortho")
    distance = difference.real**2 + difference.imag**2  # (N, 3, H, W)
    weight = distance.sqrt() ** alpha
    weight = weight / weight.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return (weight.detach() * distance).mean()


def kl_divergence(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_variance)) ‖ N(0, 1)), averaged over elements."""
    return 0.5 * (mean**2 + log_variance.exp() - 1.0 - log_variance).mean()


class FewShotTask:
    """All four networks as one module ("model"), one AdamW, and one step of the paper's training."""

    channels_last = True  # faster convolutions (training.py)

    def __init__(self, pairs: PairSet, config: FewShotConfig):
        self.pairs = pairs
        self.config = config
        self.augmentation = Augmentation(flip=config.flip, affine=config.affine, color_jitter=config.color_jitter)
        model = FewShotModel(config)
        if config.affine_output and config.affine_start == "fitted":
            before, after = sample_colors(pairs, COLOR_FIT_SAMPLES, config.seed)
            model.vae.decoder.to_image.base.copy_(fit_color_transform(before * 2 - 1, after * 2 - 1))
        self.modules: dict[str, nn.Module] = {"model": model}
        self.optimizers = {"model": torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                                      weight_decay=0.0)}
        self.fingerprint = config.fingerprint(pairs)

    def batch(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return draw_batch(self.pairs, self.config, rng, self.augmentation)

    def training_step(self, batch: dict[str, torch.Tensor], accelerator: Accelerator) -> dict[str, float]:
        config = self.config
        model = self.modules["model"]
        # Through the prepared module itself, so distributed gradient sync and autocast apply.
        outputs = model(batch["x_i"], batch["y_i"], batch["x_j"], batch["y_j"], batch["sigma"], batch["noise"],
                        batch["position_i"], batch["position_j"])
        losses = compute_losses(outputs, batch, config)
        total = (config.pixel_weight * losses["pixel"] + config.latent_weight * losses["latent"]
                 + config.flow_weight * losses["flow"] + config.vae_weight * losses["vae"]
                 + config.kl_weight * losses["kl"])
        if config.frequency_loss:
            total = total + config.frequency_weight * losses["frequency"]
        optimizer = self.optimizers["model"]
        accelerator.backward(total)
        if accelerator.sync_gradients:  # clip the summed gradient, once per update
            accelerator.clip_grad_norm_(model.parameters(), MAX_GRADIENT_NORM)
        optimizer.step()
        return {"total": total.item(), **{name: value.item() for name, value in losses.items()}}


def compute_losses(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                   config: FewShotConfig) -> dict[str, torch.Tensor]:
    """Every loss term (unweighted) from `FewShotModel.forward`'s outputs; see the module docstring."""
    y_j = batch["y_j"]
    return {
        "pixel": F.l1_loss(outputs["edited"], y_j),
        "latent": F.mse_loss(outputs["predicted"], outputs["mean_y_j"].detach()),
        "frequency": focal_frequency_loss(outputs["edited"], y_j, config.frequency_alpha),
        "flow": F.mse_loss(outputs["transformed_x_i"], batch["x_j"]),
        "vae": F.l1_loss(outputs["reconstructed"], y_j) if "reconstructed" in outputs else y_j.new_zeros(()),
        "kl": kl_divergence(outputs["mean_y_j"], outputs["log_variance_y_j"]),
    }


def train(pairs: PairSet, config: FewShotConfig, *, run_dir: Path | None, resume: bool,
          progress: bool) -> tuple[FewShotModel, TrainingResult]:
    """Train through the shared loop; returns the model to apply (the EMA one when kept) and the
    loop's result (losses per step)."""
    torch.manual_seed(config.seed)  # the networks' initial weights
    task = FewShotTask(pairs, config)
    settings = config.loop_settings(ema_module="model", progress=progress)
    result = run_training(task, settings, run_dir=run_dir, resume=resume)
    model = result.ema.get("model", task.modules["model"])
    return model.eval(), result
