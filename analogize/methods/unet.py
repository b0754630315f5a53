"""unet: the simplest strong learner of an edit, a plain U-Net trained with L1 on the pairs.

It is the baseline every learned method has to beat at the same learning time: no adversary
(pix2pix's), no latent, no reference pairs, just a convolutional network that maps a before crop
and its frame positions to the after crop. It follows Ronneberger et al. (2015): `levels`
halvings, two 3×3 convolutions per level, skip connections at every level. Where we differ:

- No normalisation layers: per-image or per-batch normalisation removes each image's mean colour
  and brightness, which colour and tone edits depend on (the few-shot model's VAE measured this).
- The input also holds each pixel's (x, y) in its whole frame (pairs.frame_position), so frame-tied
  effects are learned from crops and drawn once over a photo of any size.
- The output is the input plus a correction whose last layer starts at zero: an untrained U-Net
  is the identity, and an edit that changes little needs little to learn.
- Photos of any size are edited in overlapping tiles (tiling.py), so memory stays bounded.
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
from ..tiling import edit_in_tiles
from ..training import run_training
from .base import Edit, Method, MethodConfig, TrainableConfig, channels_first, from_model_range, to_model_range

PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a CPU, for tests.
    "tiny": dict(steps=60, batch_size=2, crop_size=32, width=8, levels=2, learning_rate=2e-3, checkpoint_every=0,
                 tile=64, tile_overlap=16),
    # This 2-core machine: the benchmark's 128 px crops, learning about as long as fewshot's cpu
    # preset (BENCHMARKS.md). The average's window (1 / (1 - decay), 100 steps) must be short
    # against the run, or the average stays near the initial, identity weights (0.999 did: BENCHMARKS.md).
    "cpu": dict(steps=700, batch_size=8, crop_size=128, width=32, levels=3, learning_rate=1e-3,
                checkpoint_every=500, ema_decay=0.99, mixed_precision="bf16"),
    # One GPU, 256 px crops and a wider network.
    "gpu-256": dict(steps=20_000, batch_size=16, crop_size=256, width=64, levels=4, learning_rate=5e-4,
                    checkpoint_every=2000, ema_decay=0.9995, mixed_precision="bf16"),
}


@dataclass
class UNetConfig(TrainableConfig):
    """A plain L1 U-Net; presets size it for the hardware."""

    steps: int = 2000
    """Optimisation steps."""
    batch_size: int = 8
    """Crops per step and process."""
    crop_size: int = 128
    """Side of the square training crops; a multiple of 2**levels."""
    learning_rate: float = 1e-3
    """AdamW learning rate (weight decay 0)."""
    width: int = 32
    """Channels at full resolution; each level down doubles them."""
    levels: int = 3
    """Halvings of the size between the input and the bottleneck."""
    frame_position: bool = True
    """Give the network each pixel's (x, y) in its whole frame as two more input channels."""
    flip: bool = True
    """Random horizontal flips of the training crops (both sides and the positions alike)."""
    affine: bool = False
    """Random small rotations, scalings and shifts; off, as for fewshot: few edits commute with them."""
    color_jitter: bool = False
    """Random brightness/contrast/saturation on both sides; off, as it alters colour edits."""
    tile: int = 256
    """Side of the tiles a photo is edited in; a multiple of 2**levels."""
    tile_overlap: int = 32
    """Pixels by which neighbouring tiles overlap."""

    def __post_init__(self) -> None:
        multiple = 2**self.levels
        problems = []
        if self.levels < 1 or self.crop_size % multiple or self.tile % multiple:
            problems.append(f"crop_size {self.crop_size} and tile {self.tile} must be multiples of "
                            f"2**levels = {multiple} (levels >= 1)")
        if min(self.steps, self.batch_size, self.width) < 1:
            problems.append("steps, batch_size and width must be at least 1")
        if not 0 <= self.tile_overlap <= self.tile // 2:
            problems.append(f"tile_overlap {self.tile_overlap} must lie in [0, tile / 2]")
        if problems:
            raise AnalogizeError("unet: " + "; ".join(problems))


# --- the network ----------------------------------------------------------------------------------


class DoubleConv(nn.Sequential):
    """Two 3×3 convolutions, each followed by SiLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.SiLU(),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.SiLU())


class UNet(nn.Module):
    """(N, 3, H, W) image in [-1, 1] [+ (N, 2, H, W) frame positions] -> (N, 3, H, W) edited image,
    unbounded; H and W multiples of 2**levels."""

    def __init__(self, width: int, levels: int, position_channels: int):
        super().__init__()
        channels = [width * 2**level for level in range(levels + 1)]
        self.position_channels = position_channels
        self.down = nn.ModuleList([DoubleConv(3 + position_channels, channels[0])]
                                  + [DoubleConv(channels[level], channels[level + 1]) for level in range(levels)])
        self.narrow = nn.ModuleList(nn.Conv2d(channels[level + 1], channels[level], 1) for level in range(levels))
        self.up = nn.ModuleList(DoubleConv(2 * channels[level], channels[level]) for level in range(levels))
        self.to_change = nn.Conv2d(channels[0], 3, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # He initialisation for the SiLU layers
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.to_change.weight)  # start as the identity edit

    def forward(self, image: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([image, position.to(image.dtype)], dim=1) if self.position_channels else image
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else F.avg_pool2d(x, 2))  # (N, C_level, H / 2**level, W / 2**level)
            skips.append(x)
        x = skips.pop()  # the bottleneck
        for level in reversed(range(len(self.up))):
            x = F.interpolate(self.narrow[level](x), scale_factor=2.0, mode="nearest")
            x = self.up[level](torch.cat([x, skips[level]], dim=1))
        return image + self.to_change(x)


# --- training -------------------------------------------------------------------------------------


class UNetTask:
    """The network, one AdamW, and one L1 step."""

    channels_last = True  # faster convolutions (training.py)

    def __init__(self, pairs: PairSet, config: UNetConfig):
        self.pairs = pairs
        self.config = config
        self.augmentation = Augmentation(flip=config.flip, affine=config.affine, color_jitter=config.color_jitter)
        network = UNet(config.width, config.levels, 2 if config.frame_position else 0)
        self.modules: dict[str, nn.Module] = {"unet": network}
        self.optimizers = {"unet": torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=0.0)}
        self.fingerprint = config.fingerprint(pairs)

    def batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        before, after, position = sample_crop_batch(self.pairs, self.config.batch_size, self.config.crop_size, rng,
                                                    self.augmentation)
        return to_model_range(before), to_model_range(after), channels_first(position)

    def training_step(self, batch: tuple[torch.Tensor, ...], accelerator: Accelerator) -> dict[str, float]:
        before, after, position = batch
        loss = F.l1_loss(self.modules["unet"](before, position), after)
        accelerator.backward(loss)
        self.optimizers["unet"].step()
        return {"l1": loss.item() / 2.0}  # in [0, 1] pixel units, comparable with other methods


# --- the edit and the method ----------------------------------------------------------------------


class UNetEdit(Edit):
    method = "unet"

    def __init__(self, config: UNetConfig, network: UNet):
        super().__init__(config)
        self.network = network.eval().to(memory_format=torch.channels_last)  # as trained: faster convolutions

    def edit(self, image: np.ndarray, *, seed: int) -> np.ndarray:
        device = next(self.network.parameters()).device

        def edit_tiles(crops: np.ndarray, positions: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                made = self.network(to_model_range(crops).to(device), channels_first(positions).to(device))
            return from_model_range(made)

        return edit_in_tiles(image, edit_tiles, tile=self.config.tile, overlap=self.config.tile_overlap,
                             tiles_per_batch=4)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"unet.{name}": tensor for name, tensor in self.network.state_dict().items()}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], config: MethodConfig) -> "UNetEdit":
        network = UNet(config.width, config.levels, 2 if config.frame_position else 0)
        network.load_state_dict({name[len("unet."):]: tensor for name, tensor in tensors.items()
                                 if name.startswith("unet.")})
        return cls(config, network)


class UNetMethod(Method):
    name = "unet"
    summary = "baseline: a plain U-Net with frame positions, trained with L1 on the pairs"
    config_class = UNetConfig
    edit_class = UNetEdit
    presets = PRESETS
    default_preset = "cpu"

    def fit(self, pairs: PairSet, config: MethodConfig, *, run_dir: Path | None, resume: bool,
            progress: bool) -> tuple[Edit, int]:
        set_seed(config.seed)  # the network's initial weights
        task = UNetTask(pairs, config)
        result = run_training(task, config.loop_settings(ema_module="unet", progress=progress),
                              run_dir=run_dir, resume=resume)
        return UNetEdit(config, result.ema.get("unet", task.modules["unet"])), result.steps
