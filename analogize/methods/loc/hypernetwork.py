"""The hypernetwork H of LoRA of Change: a before/after pair in, one LoRA (per target layer) out.

    A, A′ ──concat──► (N, 6, S, S) ──ChangeEncoder (ViT)──► image tokens (N, T, D)
    one learned query per LoRA factor (Q, D) ──LoraDecoder (6 blocks: self-attn, cross-attn to
        the image tokens, MLP)──► (N, Q, D) ──one linear head per factor──► down (N, r, in),
                                                                             up (N, out, r)

The encoder embeds patches of A and A′ stacked as six channels, so every token sees the before
and the after of the same place: the change is what it can describe, and one token stream costs
half of two. (The paper's encoder is a ViT over both images; how they are combined is not said.)

Each target Linear layer of the denoiser (lora.py) has two factors, `down` (r × in) and
`up` (out × r), and each factor its own query and head. Up-heads start at zero, so a new
hypernetwork's LoRA changes nothing and training starts from the frozen model's own behaviour.

Antisymmetric (our addition, on by default): the LoRA is Δ(A, A′) = ½·(G(A, A′) − G(A′, A)), G the
network above, written as one LoRA of rank 2r (the two downs stacked, the ups side by side, the
second negated). LoRA Reverse and the random exchange train −Δ to undo the edit, that is
Δ(A′, A) ≈ −Δ(A, A′); here it holds exactly, and a pair without a change gives Δ = 0. Without it,
our cpu-preset H learned a LoRA that ignored the pair (a constant update that helped the small
base model denoise whatever the edit, H(A, A′) = H(A, A) to four digits of the loss): the
constant is the easy way down the loss, and the antisymmetric form has none.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .lora import Factors, LoraTarget


class MLP(nn.Module):
    def __init__(self, width: int, ratio: int = 4):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, ratio * width), nn.Linear(ratio * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class EncoderBlock(nn.Module):
    """Pre-norm ViT block: self-attention, then MLP, each added to the residual stream."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = MLP(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, D)
        h = self.norm1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Pre-norm transformer decoder block: the queries attend to each other, then to the image
    tokens, then an MLP."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.self_attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.mlp = MLP(width)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:  # (N, Q, D), (N, T, D)
        h = self.norm1(queries)
        queries = queries + self.self_attention(h, h, h, need_weights=False)[0]
        queries = queries + self.cross_attention(self.norm2(queries), tokens, tokens, need_weights=False)[0]
        return queries + self.mlp(self.norm3(queries))


class ChangeEncoder(nn.Module):
    """ViT over A and A′ stacked as channels: (N, 3, S, S) twice -> tokens (N, (S/p)², D)."""

    def __init__(self, image_size: int, patch_size: int, width: int, depth: int, heads: int):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.patch_embed = nn.Conv2d(6, width, patch_size, stride=patch_size)
        self.position = nn.Parameter(torch.zeros(1, (image_size // patch_size) ** 2, width))
        self.blocks = nn.ModuleList(EncoderBlock(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(torch.cat([before, after], dim=1))  # (N, D, S/p, S/p)
        x = x.flatten(2).transpose(1, 2) + self.position  # (N, T, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class LoraDecoder(nn.Module):
    """One learned query per factor, `depth` decoder blocks, one linear head per factor."""

    def __init__(self, targets: list[LoraTarget], rank: int, width: int, depth: int, heads: int):
        super().__init__()
        self.targets, self.rank = targets, rank
        self.queries = nn.Parameter(torch.zeros(1, 2 * len(targets), width))  # down_0, up_0, down_1, ...
        self.blocks = nn.ModuleList(DecoderBlock(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.down_heads = nn.ModuleList(nn.Linear(width, rank * target.in_features) for target in targets)
        self.up_heads = nn.ModuleList(nn.Linear(width, target.out_features * rank) for target in targets)

    def forward(self, tokens: torch.Tensor) -> Factors:
        n = tokens.shape[0]
        queries = self.queries.expand(n, -1, -1)  # (N, Q, D)
        for block in self.blocks:
            queries = block(queries, tokens)
        queries = self.norm(queries)
        factors: Factors = {}
        for index, target in enumerate(self.targets):
            down = self.down_heads[index](queries[:, 2 * index]).view(n, self.rank, target.in_features)
            up = self.up_heads[index](queries[:, 2 * index + 1]).view(n, target.out_features, self.rank)
            factors[target.name] = (down, up)
        return factors


class LoraHypernetwork(nn.Module):
    """H(A, A′) -> the factors of one LoRA per target layer, for a batch of pairs.

    Images are (N, 3, S, S) in [-1, 1]."""

    def __init__(self, targets: list[LoraTarget], *, rank: int, image_size: int, patch_size: int, width: int,
                 encoder_depth: int, decoder_depth: int, heads: int, antisymmetric: bool = True):
        super().__init__()
        self.antisymmetric = antisymmetric
        self.encoder = ChangeEncoder(image_size, patch_size, width, encoder_depth, heads)
        self.decoder = LoraDecoder(targets, rank, width, decoder_depth, heads)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # DiT's patch embedding: xavier over the flattened kernel, as for a Linear layer.
        weight = self.encoder.patch_embed.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.zeros_(self.encoder.patch_embed.bias)
        nn.init.normal_(self.encoder.position, std=0.02)
        nn.init.normal_(self.decoder.queries, std=0.02)
        width = self.decoder.queries.shape[-1]
        for head, target in zip(self.decoder.down_heads, self.decoder.targets):
            # Unit-variance features give down entries of variance 1/in: x·downᵀ keeps x's scale.
            nn.init.normal_(head.weight, std=1.0 / math.sqrt(width * target.in_features))
        for head in self.decoder.up_heads:
            nn.init.zeros_(head.weight)  # biases are zero already: ΔW = 0 at the start

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> Factors:
        """(N, 3, S, S) twice -> per target (down (N, r', in), up (N, out, r')); r' = 2r when antisymmetric."""
        if not self.antisymmetric:
            return self.decoder(self.encoder(before, after))
        n = before.shape[0]
        # One batch of 2N: G(A, A′) for the first N, G(A′, A) for the rest.
        both = self.decoder(self.encoder(torch.cat([before, after]), torch.cat([after, before])))
        return {name: (torch.cat([down[:n], down[n:]], dim=1), torch.cat([up[:n], -up[n:]], dim=2) / 2)
                for name, (down, up) in both.items()}
