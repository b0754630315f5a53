"""The networks of the few-shot method, trained jointly from scratch.

    x_i, x_j ──M_x──► [F, C] ──M_e──► condition tokens ─────────────────┐ cross-attention
    y_i ──VAE enc──► y_i latent ──noise σ──► y_i(σ) ─┐                  ▼
    x_j ──VAE enc──► x_j latent ─────────────────────┴─concat──► M_y (DiT) ──► ŷ_j latent
                 └── encoder features (skips) ──────────────────► VAE dec ──► ŷ_j

- `VAE`: convolutional encoder/decoder. With `frame_position` the encoder also reads each pixel's
  (x, y) in its whole frame (pairs.frame_position), so frame-tied effects reach the latent and the
  skips; this is ours, not the paper's (which trains and applies at one frame size). The decoder
  takes skip connections from the encoder run on the *query* x_j (the only image at full resolution that exists when applying, and pixel-aligned
  with y_j), and adds noise with a learned per-channel scale (zero at start) after every convolution.
- `FlowColorNet` (M_x): a small U-Net on (x_i, x_j) that predicts per pixel a flow F (an offset of
  the sampling position, in grid_sample's [-1, 1] units) and a colour affine C (gain, bias).
  Its output layer starts at zero: identity flow, gain 1, bias 0.
- `ConditionEncoder` (M_e): patches of [F, C] to tokens, plus one transformer block.
- `LatentDiT` (M_y): a DiT (Peebles & Xie) over latent patches with adaLN-Zero conditioning on the
  noise level, an un-gated cross-attention to M_e's tokens in every block, and Dual PatchNorm
  (a LayerNorm before and after the patch embedding, the paper's "extra layer norms"). It predicts
  the y_j latent itself.

Images are (N, 3, H, W) in [-1, 1] throughout.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import FewShotConfig

# --- shared pieces --------------------------------------------------------------------------------


def level_channels(width: int, levels: int) -> list[int]:
    """Channels at each resolution level: width, 2·width, then 4·width for every deeper level."""
    return [width * min(2**level, 4) for level in range(levels + 1)]


class NoiseInjection(nn.Module):
    """Adds one Gaussian noise image per sample, scaled per channel by a learned weight that starts
    at zero (StyleGAN). `generator` makes the noise reproducible when applying."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        noise = torch.randn((n, 1, h, w), generator=generator, device=x.device, dtype=x.dtype)
        # In x's dtype: under bf16 autocast the float32 weight would otherwise promote the whole
        # activation to float32 (elementwise ops are not autocast), and one fused op instead of
        # two; this line once dominated a bf16 apply (docs/methods/fewshot.md).
        return torch.addcmul(x, self.weight.to(x.dtype), noise)


class ConvLayer(nn.Module):
    """3×3 convolution (optionally strided) → [noise] → SiLU.

    No normalisation layer: GroupNorm (or any per-image norm) removes each image's mean colour
    and brightness, which is exactly what colour and tone edits depend on (measured in
    docs/methods/fewshot.md). The networks are shallow enough to train without it from
    He-initialised weights."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, noise: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1)
        self.noise = NoiseInjection(out_channels) if noise else None

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.conv(x)
        if self.noise is not None:
            x = self.noise(x, generator)
        return F.silu(x)


# --- the VAE --------------------------------------------------------------------------------------


class Encoder(nn.Module):
    """(N, 3, H, W) -> latent mean (scaled to unit root-mean-square per image) and log-variance
    (N, c, H/d, W/d), and the features at each finer level for the decoder's skips:
    [(N, C_0, H, W), (N, C_1, H/2, W/2), ...]."""

    def __init__(self, width: int, levels: int, latent_channels: int, position_channels: int = 0):
        super().__init__()
        channels = level_channels(width, levels)
        self.position_channels = position_channels
        self.stem = ConvLayer(3 + position_channels, channels[0])
        self.down = nn.ModuleList(
            nn.Sequential(ConvLayer(channels[level], channels[level + 1], stride=2),
                          ConvLayer(channels[level + 1], channels[level + 1]))
            for level in range(levels)
        )
        self.to_moments = nn.Conv2d(channels[-1], 2 * latent_channels, 1)

    def forward(self, x: torch.Tensor, position: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        # x (N, 3, H, W); position (N, 2, H, W), read only when the encoder was built for it
        if self.position_channels:
            x = torch.cat([x, position.to(x.dtype)], dim=1)
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))  # each halves H and W
        mean, log_variance = self.to_moments(skips.pop()).chunk(2, dim=1)  # the deepest is the latent
        # Unit root-mean-square per image: without a KL pull nothing else bounds the latent's scale,
        # and it grew until M_y's latent loss (0.14 -> 2e8 on `stylize` in 650 steps) swamped
        # every other term. One scalar per image is all this discards.
        mean = mean / mean.float().pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-6).sqrt()
        return mean, log_variance.clamp(-20.0, 10.0), skips


class DecoderLevel(nn.Module):
    """Doubles the size: 1×1 convolution to fewer channels, nearest upsampling, [skip
    concatenated], then `convolutions` 3×3 convolutions. Narrowing before upsampling keeps the
    costly full-resolution work small (the decoder dominates a CPU training step)."""

    def __init__(self, in_channels: int, out_channels: int, *, skip: bool, noise: bool, convolutions: int = 1):
        super().__init__()
        self.narrow = nn.Conv2d(in_channels, out_channels, 1)
        self.merge = ConvLayer(out_channels * (2 if skip else 1), out_channels, noise=noise)
        self.refine = nn.ModuleList(ConvLayer(out_channels, out_channels, noise=noise)
                                    for _ in range(convolutions - 1))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
        x = F.interpolate(self.narrow(x), scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        x = self.merge(x, generator)
        for layer in self.refine:
            x = layer(x, generator)
        return x


class AffineColorOutput(nn.Module):
    """ŷ = A·x + b at every pixel: decoder features (N, C, H, W) give a bias b and (with
    `per_pixel_matrix`) a 3×3 colour matrix A per pixel, applied to the query image x (N, 3, H, W).
    Gharbi et al.'s local affine colour transforms (HDRNet, 2017), predicted here at full
    resolution. The features give only a correction to `base`, one global transform [A₀ | b₀]
    (3, 4), and the projection starts at zero, so the untrained decoder returns A₀·x + b₀.
    Training sets `base` to the pairs' least-squares colour transform (train.fit_color_transform):
    a filter that keeps the photo and changes it a little (detail, smoothing, a grade) starts near
    the identity, one that replaces it (a relief, a drawing) near a flat grey, and only what
    differs pixel by pixel is learned. Without a fit `base` is the identity. Without
    `per_pixel_matrix` A = A₀ everywhere and only b varies: a U-Net's residual output, around a
    global colour transform instead of the identity; `per_pixel_gain` adds one channel g,
    ŷ = (1 + g)·(A₀·x + b₀) + r, for what varies multiplicatively (a vignette, a flattened region)."""

    def __init__(self, channels: int, per_pixel_matrix: bool = True, per_pixel_gain: bool = False):
        super().__init__()
        self.per_pixel_matrix = per_pixel_matrix
        self.per_pixel_gain = per_pixel_gain
        outputs = 12 if per_pixel_matrix else 4 if per_pixel_gain else 3
        self.project = nn.Conv2d(channels, outputs, 3, 1, 1)  # [A − A₀ | b − b₀], [g | b − b₀] or [b − b₀]
        self.register_buffer("base", torch.eye(3, 4))  # [A₀ | b₀]

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        coefficients = self.project(features)  # (N, 12 | 4 | 3, H, W)
        base = self.base.to(coefficients.dtype)
        matrix = base[:, :3, None, None]  # (3, 3, 1, 1)
        if self.per_pixel_matrix:
            matrix = matrix + coefficients[:, :9].unflatten(1, (3, 3))  # (N, 3, 3, H, W)
        image = image.to(coefficients.dtype)
        transformed = (matrix * image.unsqueeze(1)).sum(dim=2) + base[:, 3, None, None]  # A·x + b₀: (N, 3, H, W)
        if self.per_pixel_gain:
            transformed = transformed * (1 + coefficients[:, :1])  # (1 + g)·(A₀·x + b₀)
        return transformed + coefficients[:, -3:]  # (N, 3, H, W)


class Decoder(nn.Module):
    """Latent (N, c, H/d, W/d) [+ the encoder's skip features] [+ the query image] -> image
    (N, 3, H, W), unbounded. With `affine_output` the last layer predicts a colour transform of
    the query (AffineColorOutput) instead of the image."""

    def __init__(self, width: int, levels: int, latent_channels: int, *, skips: bool, noise: bool,
                 convolutions: int = 1, affine_output: bool = False, per_pixel_matrix: bool = True,
                 per_pixel_gain: bool = False):
        super().__init__()
        channels = level_channels(width, levels)
        self.skips = skips
        self.from_latent = ConvLayer(latent_channels, channels[-1], noise=noise)
        self.up = nn.ModuleList(
            DecoderLevel(channels[level + 1], channels[level], skip=skips, noise=noise, convolutions=convolutions)
            for level in reversed(range(levels))
        )
        self.to_image = (AffineColorOutput(channels[0], per_pixel_matrix, per_pixel_gain) if affine_output
                         else nn.Conv2d(channels[0], 3, 3, 1, 1))

    def forward(self, latent: torch.Tensor, skips: list[torch.Tensor], query: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.from_latent(latent, generator)
        for level, block in zip(reversed(range(len(self.up))), self.up):
            x = block(x, skips[level] if self.skips else None, generator)
        if isinstance(self.to_image, AffineColorOutput):
            return self.to_image(x, query)
        return self.to_image(x)


class VAE(nn.Module):
    def __init__(self, config: FewShotConfig):
        super().__init__()
        levels = int(math.log2(config.latent_downsampling))
        self.encoder = Encoder(config.vae_width, levels, config.latent_channels,
                               position_channels=2 if config.frame_position else 0)
        self.decoder = Decoder(config.vae_width, levels, config.latent_channels,
                               skips=config.vae_skips, noise=config.decoder_noise,
                               convolutions=config.decoder_convolutions, affine_output=config.affine_output,
                               per_pixel_matrix=config.per_pixel_matrix, per_pixel_gain=config.per_pixel_gain)


# --- M_x: flow and colour from (x_i, x_j) ---------------------------------------------------------


class FlowColorNet(nn.Module):
    """M_x: (x_i, x_j), each (N, 3, S, S) -> [F, C] (N, 4, S/f, S/f), f = flow_downsampling.
    Channels 0-1: flow offset (x, y) in [-1, 1] grid units; 2: gain − 1; 3: bias."""

    LEVELS = 3

    def __init__(self, width: int, downsampling: int):
        super().__init__()
        channels = level_channels(width, self.LEVELS)
        self.downsampling = downsampling
        self.stem = ConvLayer(6, channels[0])
        self.down = nn.ModuleList(ConvLayer(channels[i], channels[i + 1], stride=2) for i in range(self.LEVELS))
        self.up = nn.ModuleList(DecoderLevel(channels[i + 1], channels[i], skip=True, noise=False)
                                for i in reversed(range(self.LEVELS)))
        self.to_flow_color = nn.Conv2d(channels[0], 4, 3, 1, 1)
        nn.init.zeros_(self.to_flow_color.weight)  # start from the identity transform
        nn.init.zeros_(self.to_flow_color.bias)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = torch.cat([source, target], dim=1)  # (N, 6, S, S)
        if self.downsampling > 1:
            x = F.avg_pool2d(x, self.downsampling)  # (N, 6, S/f, S/f)
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        x = skips.pop()
        for level, block in zip(reversed(range(self.LEVELS)), self.up):
            x = block(x, skips[level], None)
        return self.to_flow_color(x)  # (N, 4, S/f, S/f)


def identity_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Pixel centres in grid_sample's [-1, 1] units (align_corners=False): (1, H, W, 2) as (x, y)."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=torch.float32) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)[None]


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """T_s: each output pixel takes the image's value at (its own position + flow), bilinearly.
    image (N, C, H, W), flow (N, 2, H, W) -> (N, C, H, W). A zero flow returns the image
    (bit-exactly where H and W are powers of two, as the training crops are)."""
    height, width = image.shape[-2:]
    grid = identity_grid(height, width, image.device) + flow.float().permute(0, 2, 3, 1)  # (N, H, W, 2)
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def transform(image: torch.Tensor, flow_color: torch.Tensor) -> torch.Tensor:
    """x̂_j = T_c(T_s(x_i)): warp by F, then per-pixel gain and bias. `flow_color` may be at a lower
    resolution than the image; it is upsampled bilinearly."""
    if flow_color.shape[-2:] != image.shape[-2:]:
        flow_color = F.interpolate(flow_color.float(), size=image.shape[-2:], mode="bilinear", align_corners=False)
    flow, gain, bias = flow_color[:, :2], flow_color[:, 2:3], flow_color[:, 3:4]
    return warp(image, flow) * (1.0 + gain) + bias


# --- transformer pieces ---------------------------------------------------------------------------


def noised(latent: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """y(σ) = (1 − σ)·y + σ·ε, the linear path from the latent (σ = 0) to pure noise (σ = 1)."""
    sigma = sigma.view(-1, 1, 1, 1)
    return (1.0 - sigma) * latent + sigma * noise


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # x (N, T, D); shift, scale (N, D)
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """Multi-head attention of x over `context` (itself when None)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(width, width)
        self.to_kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        n, tokens, width = x.shape
        q = self.to_q(x).view(n, tokens, self.heads, -1).transpose(1, 2)  # (N, heads, T, D/heads)
        k, v = self.to_kv(context).view(n, context.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)  # (N, heads, T, D/heads)
        return self.out(attended.transpose(1, 2).reshape(n, tokens, width))


class MLP(nn.Sequential):
    def __init__(self, width: int, ratio: int = 4):
        super().__init__(nn.Linear(width, ratio * width), nn.GELU(approximate="tanh"), nn.Linear(ratio * width, width))


class PatchEmbed(nn.Module):
    """Dual PatchNorm (Kumar et al. 2023): LayerNorm → Linear → LayerNorm on flattened patches.
    (N, C, H, W) -> (N, (H/p)·(W/p), D)."""

    def __init__(self, in_channels: int, patch: int, width: int):
        super().__init__()
        self.patch = patch
        self.norm_in = nn.LayerNorm(in_channels * patch * patch)
        self.project = nn.Linear(in_channels * patch * patch, width)
        self.norm_out = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = F.unfold(x, self.patch, stride=self.patch).transpose(1, 2)  # (N, T, C·p·p)
        return self.norm_out(self.project(self.norm_in(patches)))


def sincos_position_embedding(width: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine embedding (1, grid², width): half the channels encode the row,
    half the column, each at geometrically spaced frequencies."""
    quarter = width // 4
    frequencies = 1.0 / 10_000 ** (np.arange(quarter) / quarter)  # (D/4,)
    rows, columns = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    parts = []
    for coordinate in (rows.reshape(-1), columns.reshape(-1)):
        angles = coordinate[:, None] * frequencies[None]  # (T, D/4)
        parts += [np.sin(angles), np.cos(angles)]
    embedding = np.concatenate(parts, axis=1)
    embedding = np.pad(embedding, ((0, 0), (0, width - embedding.shape[1])))  # widths not divisible by 4
    return torch.from_numpy(embedding).float()[None]


def timestep_embedding(sigma: torch.Tensor, width: int) -> torch.Tensor:
    """Sinusoidal features of the noise level σ ∈ [0, 1] (scaled to [0, 1000] like DDPM steps):
    (N,) -> (N, width)."""
    half = width // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=sigma.device) / half)
    angles = 1000.0 * sigma.float()[:, None] * frequencies[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class TimestepEmbedder(nn.Module):
    FREQUENCY_FEATURES = 256

    def __init__(self, width: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(self.FREQUENCY_FEATURES, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(sigma, self.FREQUENCY_FEATURES))  # (N, D)


# --- M_e: tokens from [F, C] ----------------------------------------------------------------------


class ConditionEncoder(nn.Module):
    """M_e: [F, C] (N, 4, S/f, S/f) -> condition tokens (N, T, D), on M_y's token grid."""

    def __init__(self, patch: int, width: int, heads: int, grid: int):
        super().__init__()
        self.embed = PatchEmbed(4, patch, width)
        self.register_buffer("position", sincos_position_embedding(width, grid), persistent=False)
        self.norm_attention = nn.LayerNorm(width)
        self.attention = Attention(width, heads)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = MLP(width)
        self.norm_out = nn.LayerNorm(width)

    def forward(self, flow_color: torch.Tensor) -> torch.Tensor:
        x = self.embed(flow_color) + self.position  # (N, T, D)
        x = x + self.attention(self.norm_attention(x))
        x = x + self.mlp(self.norm_mlp(x))
        return self.norm_out(x)


# --- M_y: the latent DiT ----------------------------------------------------------------------------


class DiTBlock(nn.Module):
    """adaLN-Zero self-attention and MLP (gated, start as identity), and cross-attention to the
    condition tokens between them (un-gated, as in PixArt-α)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm_self = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.self_attention = Attention(width, heads)
        self.norm_cross = nn.LayerNorm(width, eps=1e-6)
        self.cross_attention = Attention(width, heads)
        self.norm_mlp = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(width)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        # x (N, T, D), timestep (N, D), condition (N, T_c, D)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.modulation(timestep).chunk(6, dim=1)
        x = x + gate_a[:, None] * self.self_attention(modulate(self.norm_self(x), shift_a, scale_a))
        x = x + self.cross_attention(self.norm_cross(x), condition)
        return x + gate_m[:, None] * self.mlp(modulate(self.norm_mlp(x), shift_m, scale_m))


class FinalLayer(nn.Module):
    def __init__(self, width: int, out_features: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.project = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(timestep).chunk(2, dim=1)
        return self.project(modulate(self.norm(x), shift, scale))  # (N, T, p·p·c)


class LatentDiT(nn.Module):
    """M_y: (y_i(σ) latent, σ, x_j latent, condition tokens) -> predicted y_j latent (N, c, h, w)."""

    def __init__(self, latent_channels: int, patch: int, grid: int, width: int, depth: int, heads: int):
        super().__init__()
        self.patch, self.grid, self.latent_channels = patch, grid, latent_channels
        self.embed = PatchEmbed(2 * latent_channels, patch, width)
        self.register_buffer("position", sincos_position_embedding(width, grid), persistent=False)
        self.timestep = TimestepEmbedder(width)
        self.blocks = nn.ModuleList(DiTBlock(width, heads) for _ in range(depth))
        self.final = FinalLayer(width, patch * patch * latent_channels)

    def forward(self, noised: torch.Tensor, sigma: torch.Tensor, query: torch.Tensor,
                condition: torch.Tensor) -> torch.Tensor:
        x = self.embed(torch.cat([noised, query], dim=1)) + self.position  # (N, T, D)
        timestep = self.timestep(sigma)  # (N, D)
        for block in self.blocks:
            x = block(x, timestep, condition)
        x = self.final(x, timestep)  # (N, T, p·p·c)
        side = self.grid * self.patch
        return F.fold(x.transpose(1, 2), (side, side), self.patch, stride=self.patch)  # (N, c, h, w)


# --- everything together -----------------------------------------------------------------------------


class FewShotModel(nn.Module):
    """The four jointly trained parts. Sizes come from the config; see the module docstring."""

    def __init__(self, config: FewShotConfig):
        super().__init__()
        latent_side = config.crop_size // config.latent_downsampling
        grid = latent_side // config.patch_size
        condition_patch = config.latent_downsampling * config.patch_size // config.flow_downsampling
        self.use_query, self.use_flow_color = config.use_query, config.use_flow_color
        self.reconstructs = config.vae_weight > 0  # a loss weighted 0 is not worth a decoder pass
        self.trains_through_y_j = self.reconstructs or config.kl_weight > 0
        self.vae = VAE(config)
        self.flow = FlowColorNet(config.flow_width, config.flow_downsampling)
        self.condition = ConditionEncoder(condition_patch, config.transformer_width, config.heads, grid)
        self.denoiser = LatentDiT(config.latent_channels, config.patch_size, grid, config.transformer_width,
                                  config.transformer_depth, config.heads)
        self.initialize_weights()

    def forward(self, x_i: torch.Tensor, y_i: torch.Tensor, x_j: torch.Tensor, y_j: torch.Tensor,
                sigma: torch.Tensor, noise: torch.Tensor, position_i: torch.Tensor,
                position_j: torch.Tensor) -> dict[str, torch.Tensor]:
        """The training pass: images (N, 3, S, S), noise levels σ (N,), latent noise ε (N, c, h, w),
        frame positions of the i and j crops (N, 2, S, S) -> everything the losses need (see train.py)."""
        n = x_i.shape[0]
        flow_color = self.flow(x_i, x_j)  # (N, 4, S/f, S/f)
        condition = self.condition_tokens(flow_color)  # (N, T, D)

        # Separate encoder passes: slicing x_j's skips out of one batched pass left full-resolution
        # zero gradients for the other images' skips to fill and add (docs/methods/fewshot.md).
        mean_x_j, _, query_skips = self.vae.encoder(x_j, position_j)  # the decoder always sees x_j's details
        mean_y_i, _, _ = self.vae.encoder(y_i, position_i)
        # y_j's latent is only a target (the latent loss detaches it) unless the VAE's own losses
        # train the encoder through it; otherwise its backward pass would be spent for nothing.
        with contextlib.nullcontext() if self.trains_through_y_j else torch.no_grad():
            mean_y_j, log_variance_y_j, _ = self.vae.encoder(y_j, position_j)
        predicted = self.denoiser(noised(mean_y_i, sigma, noise), sigma, self.query_latent(mean_x_j), condition)

        # One decoder pass for the prediction and (when its loss counts) the VAE's own reconstruction of y_j.
        latents = [predicted]
        if self.reconstructs:
            latents.append(mean_y_j + (0.5 * log_variance_y_j).exp() * torch.randn_like(mean_y_j))
        copies = len(latents)
        decoded = self.vae.decoder(torch.cat(latents), [torch.cat([s] * copies) for s in query_skips],
                                   torch.cat([x_j] * copies))
        edited, *reconstructed = decoded.split(n)
        return {
            "transformed_x_i": transform(x_i, flow_color),  # x̂_j
            "predicted": predicted,  # M_y's y_j latent
            "edited": edited,  # ŷ_j
            **({"reconstructed": reconstructed[0]} if reconstructed else {}),
            "mean_y_j": mean_y_j,
            "log_variance_y_j": log_variance_y_j,
        }

    def condition_tokens(self, flow_color: torch.Tensor) -> torch.Tensor:
        """M_e([F, C]); without use_flow_color (the paper's ablation) M_e of a constant."""
        return self.condition(flow_color if self.use_flow_color else torch.zeros_like(flow_color))

    def query_latent(self, mean_x_j: torch.Tensor) -> torch.Tensor:
        """The x_j latent M_y sees; without use_query (the paper's ablation) zeros."""
        return mean_x_j if self.use_query else torch.zeros_like(mean_x_j)

    def initialize_weights(self) -> None:
        """DiT's initialisation: Xavier-uniform linear layers, zero biases, and zero for every
        adaLN modulation and the final projection, so each block starts as the identity and the
        first prediction is the zero latent. Convolutions: He-normal, except the output layers
        that start at zero: M_x's (the identity transform) and an affine decoder output's (the
        query itself)."""
        starting_at_zero = [self.flow.to_flow_color]
        if isinstance(self.vae.decoder.to_image, AffineColorOutput):
            starting_at_zero.append(self.vae.decoder.to_image.project)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d) and all(module is not layer for layer in starting_at_zero):
                # He initialisation keeps activations at a steady scale through the SiLU layers.
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        for block in self.denoiser.blocks:
            nn.init.zeros_(block.modulation[-1].weight)
            nn.init.zeros_(block.modulation[-1].bias)
        nn.init.normal_(self.denoiser.timestep.mlp[0].weight, std=0.02)
        nn.init.normal_(self.denoiser.timestep.mlp[2].weight, std=0.02)
        for layer in (self.denoiser.final.modulation[-1], self.denoiser.final.project, *starting_at_zero):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
