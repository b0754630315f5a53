"""pix2pix (Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks", 2017):
the conditional GAN baseline the few-shot paper compares against, trained on the same pairs.

Generator: a U-Net. The encoder halves the size `generator_depth` times with 4×4 stride-2
convolutions (BatchNorm, LeakyReLU 0.2); the decoder doubles it back with transposed convolutions
(BatchNorm, dropout 0.5 in the three innermost levels, ReLU), each level concatenated with the
encoder output of the same size; a last transposed convolution and tanh give the image.
Discriminator: a PatchGAN that scores overlapping patches (70×70 with three layers) of the
(before, after) pair stacked as six channels. Loss: the paper's vanilla GAN loss (binary cross
entropy on logits) plus `l1_weight` (100) × L1 to the target; Adam, lr 2e-4, betas (0.5, 0.999);
the discriminator's loss is halved, as in the paper.

Where we differ from the paper, and why:
- No BatchNorm on the innermost (bottleneck) layer: at 1×1 it would normalise a single value to
  zero (the authors' code drops it too).
- Applying an edit uses BatchNorm's running statistics (eval mode). The paper trains and tests
  with batch size 1 and test-time batch statistics; we train on small crops but apply to whole
  photos of any size, and running statistics make the generator the same function at every size.
- Dropout stays on when applying, as in the paper, where it is the generator's only source of
  noise. It is drawn from `seed`, so the same seed gives the same output.
- Photos of any size: the image is reflect-padded to a multiple of 2**generator_depth, run fully
  convolutionally, and cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn

from ..errors import AnalogizeError
from ..pairs import Augmentation, PairSet, sample_crop_batch
from ..training import run_training
from .base import Edit, Method, MethodConfig, TrainableConfig, from_model_range, to_model_range

PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a CPU, for tests; a higher learning rate so a few dozen steps visibly learn.
    "tiny": dict(
        steps=60, batch_size=2, crop_size=32, learning_rate=1e-3, generator_width=8, generator_depth=5,
        discriminator_width=8, discriminator_layers=2, checkpoint_every=0,
    ),
    # About 3.5 minutes on an idle 2-core CPU (measured: 5 steps/s on 128 px crops).
    "cpu": dict(
        steps=1000, batch_size=4, crop_size=128, generator_width=32, generator_depth=7,
        discriminator_width=32, discriminator_layers=3, checkpoint_every=250,
    ),
    # The paper's networks (64 base channels, 70×70 PatchGAN) on 256 px crops.
    "gpu-256": dict(
        steps=20_000, batch_size=4, crop_size=256, generator_width=64, generator_depth=8,
        discriminator_width=64, discriminator_layers=3, checkpoint_every=1000, ema_decay=0.999,
    ),
    # The same networks on 512 px crops, with one more U-Net level so the bottleneck stays 1×1.
    "gpu-512": dict(
        steps=40_000, batch_size=2, crop_size=512, generator_width=64, generator_depth=9,
        discriminator_width=64, discriminator_layers=3, checkpoint_every=1000, ema_decay=0.999,
    ),
}


@dataclass
class Pix2PixConfig(TrainableConfig):
    """Defaults are the paper's 256 px setup; presets adapt it to the hardware."""

    steps: int = 20_000
    """Optimisation steps (one discriminator and one generator update each)."""
    batch_size: int = 1
    """Crops per step and process (the paper uses 1)."""
    crop_size: int = 256
    """Side of the square training crops; a multiple of 2**generator_depth."""
    learning_rate: float = 2e-4
    """Adam learning rate for both networks (Adam betas are the paper's (0.5, 0.999))."""
    l1_weight: float = 100.0
    """λ, the weight of the L1 loss against the adversarial loss."""
    generator_width: int = 64
    """Channels of the generator's first level; each deeper level doubles it, up to 8×."""
    generator_depth: int = 8
    """Number of U-Net down blocks; 8 takes a 256 px crop to a 1×1 bottleneck."""
    discriminator_width: int = 64
    """Channels of the discriminator's first layer; each further layer doubles it, up to 8×."""
    discriminator_layers: int = 3
    """Stride-2 layers of the PatchGAN; 3 gives the paper's 70×70 patches."""
    flip: bool = True
    """Random horizontal flips of the training crops (both sides alike)."""
    affine: bool = False
    """Random small rotations, scalings and shifts of the training crops."""
    color_jitter: bool = False
    """Random brightness/contrast/saturation on both sides; off, as it alters colour edits."""

    def __post_init__(self) -> None:
        multiple = 2**self.generator_depth
        if self.generator_depth < 2 or self.crop_size % multiple:
            raise AnalogizeError(
                f"pix2pix: crop_size {self.crop_size} is not a multiple of 2**generator_depth = {multiple}; "
                "change one of them (depth >= 2)"
            )
        if self.crop_size // 2**self.discriminator_layers < 3:
            raise AnalogizeError(
                f"pix2pix: crop_size {self.crop_size} is too small for {self.discriminator_layers} "
                f"discriminator layers; use crops of at least {3 * 2**self.discriminator_layers} px"
            )
        if min(self.steps, self.batch_size, self.generator_width, self.discriminator_width) < 1:
            raise AnalogizeError("pix2pix: steps, batch_size and the widths must all be at least 1")


# --- networks -------------------------------------------------------------------------------------


class EncoderBlock(nn.Module):
    """4×4 convolution (stride 2 halves H and W) → BatchNorm → LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 2, normalize: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 4, stride, 1, bias=not normalize)
        self.norm = nn.BatchNorm2d(out_channels) if normalize else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class DecoderBlock(nn.Module):
    """4×4 transposed convolution (doubles H and W) → BatchNorm → dropout → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # training=True always: dropout is pix2pix's noise source when applying, too.
        return F.relu(F.dropout(self.norm(self.conv(x)), self.dropout, training=True))


def level_channels(width: int, levels: int) -> list[int]:
    """width, 2·width, 4·width, then 8·width for every deeper level (the paper's C64…C512)."""
    return [width * min(2**level, 8) for level in range(levels)]


class UNetGenerator(nn.Module):
    """Maps a before image to an after image, both (N, 3, H, W) in [-1, 1], with H and W
    multiples of 2**depth."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        channels = level_channels(width, depth)
        self.encoder = nn.ModuleList(
            EncoderBlock(3 if level == 0 else channels[level - 1], channels[level],
                         normalize=0 < level < depth - 1)  # not on the raw input nor the 1×1 bottleneck
            for level in range(depth)
        )
        # From the bottleneck up; below the bottleneck every input is [upsampled, skip], twice as wide.
        self.decoder = nn.ModuleList(
            DecoderBlock(channels[level] * (1 if level == depth - 1 else 2), channels[level - 1],
                         dropout=0.5 if level >= depth - 3 else 0.0)
            for level in range(depth - 1, 0, -1)
        )
        self.to_image = nn.ConvTranspose2d(2 * channels[0], 3, 4, 2, 1)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.encoder:
            x = block(x)  # (N, C_level, H / 2**(level+1), W / 2**(level+1))
            skips.append(x)
        x = skips.pop()  # the bottleneck
        for block in self.decoder:
            x = torch.cat([block(x), skips.pop()], dim=1)  # (N, 2·C_level, ...) at the skip's size
        return torch.tanh(self.to_image(x))  # (N, 3, H, W)


class PatchDiscriminator(nn.Module):
    """Scores each overlapping patch of a (before, after) pair: real (positive logit) or made."""

    def __init__(self, width: int, layers: int):
        super().__init__()
        channels = level_channels(width, layers + 1)
        self.blocks = nn.Sequential(
            EncoderBlock(6, channels[0], normalize=False),
            *(EncoderBlock(channels[i - 1], channels[i]) for i in range(1, layers)),
            EncoderBlock(channels[layers - 1], channels[layers], stride=1),
        )
        self.to_logits = nn.Conv2d(channels[layers], 1, 4, 1, 1)
        self.apply(init_weights)

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        # (N, 3, H, W) twice -> (N, 1, H / 2**layers - 2, W / 2**layers - 2)
        return self.to_logits(self.blocks(torch.cat([before, after], dim=1)))


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: weights from N(0, 0.02), norm scales from N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# --- training -------------------------------------------------------------------------------------


class Pix2PixTask:
    """The generator and discriminator, their optimizers, and one step of the paper's training."""

    def __init__(self, pairs: PairSet, config: Pix2PixConfig):
        self.pairs = pairs
        self.config = config
        self.augmentation = Augmentation(flip=config.flip, affine=config.affine, color_jitter=config.color_jitter)
        generator = UNetGenerator(config.generator_width, config.generator_depth)
        discriminator = PatchDiscriminator(config.discriminator_width, config.discriminator_layers)
        self.modules: dict[str, nn.Module] = {"generator": generator, "discriminator": discriminator}
        self.optimizers = {
            name: torch.optim.Adam(module.parameters(), lr=config.learning_rate, betas=(0.5, 0.999))
            for name, module in self.modules.items()
        }
        self.fingerprint = config.fingerprint(pairs)

    def batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        before, after, _positions = sample_crop_batch(
            self.pairs, self.config.batch_size, self.config.crop_size, rng, self.augmentation
        )
        return to_model_range(before), to_model_range(after)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], accelerator: Accelerator) -> dict[str, float]:
        before, after = batch  # (N, 3, S, S) in [-1, 1]
        generator, discriminator = self.modules["generator"], self.modules["discriminator"]
        made = generator(before)

        real_logits = discriminator(before, after)
        made_logits = discriminator(before, made.detach())
        discriminator_loss = 0.5 * (
            F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(made_logits, torch.zeros_like(made_logits))
        )
        accelerator.backward(discriminator_loss)
        self.optimizers["discriminator"].step()

        # The generator's update must not leave gradients in the discriminator: with gradient
        # accumulation they would be summed into its next update. The frozen discriminator is
        # called unwrapped, because a distributed wrapper expects gradients for all its weights.
        frozen_discriminator = accelerator.unwrap_model(discriminator).requires_grad_(False)
        made_logits = frozen_discriminator(before, made)
        adversarial_loss = F.binary_cross_entropy_with_logits(made_logits, torch.ones_like(made_logits))
        l1_loss = F.l1_loss(made, after)
        accelerator.backward(adversarial_loss + self.config.l1_weight * l1_loss)
        frozen_discriminator.requires_grad_(True)
        self.optimizers["generator"].step()
        return {
            "discriminator": discriminator_loss.item(),
            "adversarial": adversarial_loss.item(),
            # L1 in [0, 1] pixel units, comparable with other methods' errors.
            "l1": l1_loss.item() / 2.0,
        }


# --- the edit and the method ----------------------------------------------------------------------


class Pix2PixEdit(Edit):
    method = "pix2pix"

    def __init__(self, config: Pix2PixConfig, generator: UNetGenerator):
        super().__init__(config)
        self.generator = generator.eval()

    def edit(self, image: np.ndarray, *, seed: int) -> np.ndarray:
        height, width = image.shape[:2]
        multiple = 2**self.config.generator_depth
        padded = np.pad(image, ((0, -height % multiple), (0, -width % multiple), (0, 0)), mode="reflect")
        device = next(self.generator.parameters()).device
        # Seed the dropout noise without disturbing the caller's random state.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
            torch.manual_seed(seed)
            made = self.generator(to_model_range(padded[None]).to(device))
        return from_model_range(made)[0, :height, :width].clip(0.0, 1.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"generator.{name}": tensor for name, tensor in self.generator.state_dict().items()}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], config: MethodConfig) -> "Pix2PixEdit":
        generator = UNetGenerator(config.generator_width, config.generator_depth)
        prefix = "generator."
        generator.load_state_dict({name[len(prefix):]: tensor for name, tensor in tensors.items()
                                   if name.startswith(prefix)})
        return cls(config, generator)


class Pix2Pix(Method):
    name = "pix2pix"
    summary = "baseline: conditional GAN (U-Net + PatchGAN, Isola et al. 2017) trained on the pairs"
    config_class = Pix2PixConfig
    edit_class = Pix2PixEdit
    presets = PRESETS
    default_preset = "cpu"

    def fit(
        self, pairs: PairSet, config: MethodConfig, *, run_dir: Path | None, resume: bool, progress: bool
    ) -> tuple[Edit, int]:
        set_seed(config.seed)  # the networks' initial weights
        task = Pix2PixTask(pairs, config)
        settings = config.loop_settings(ema_module="generator", progress=progress)
        result = run_training(task, settings, run_dir=run_dir, resume=resume)
        generator = result.ema.get("generator", task.modules["generator"])
        return Pix2PixEdit(config, generator), result.steps
