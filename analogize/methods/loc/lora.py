"""Generated LoRAs inside a frozen denoiser, switched on with a sign and never copied into it.

A LoRA on a Linear layer W adds a low-rank update: y = W·x + sign·scale·up·(down·x), with
`down` (r, in) and `up` (out, r). LoRA of Change generates `down` and `up` per before/after
pair, so they are not parameters of the denoiser but tensors computed by the hypernetwork;
gradients must reach the hypernetwork through them, and the same frozen denoiser serves every
pair and both signs. A forward hook on each target layer adds the update to the layer's output
for as long as `generated_lora` is active; the base weights are never touched.

Factors are batched: `down` (N, r, in), `up` (N, out, r) gives sample n of a batch its own LoRA.
A batch that is k·N long (classifier-free guidance stacks the conditional and unconditional
passes) uses the N LoRAs for each of its k chunks in turn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

Factors = dict[str, tuple[torch.Tensor, torch.Tensor]]
"""Target layer name -> (down (N, r, in), up (N, out, r))."""


@dataclass(frozen=True)
class LoraTarget:
    """One Linear layer of the denoiser that receives a generated LoRA."""

    name: str
    """Its path in the denoiser, e.g. "mid_block.attentions.0.transformer_blocks.0.attn1.to_q"."""
    in_features: int
    out_features: int


def find_targets(denoiser: nn.Module, suffixes: tuple[str, ...]) -> list[LoraTarget]:
    """Every Linear layer whose path ends with one of `suffixes` (e.g. "attn1.to_q"), in module order."""
    found = [LoraTarget(name, module.in_features, module.out_features)
             for name, module in denoiser.named_modules()
             if isinstance(module, nn.Linear) and any(name == s or name.endswith("." + s) for s in suffixes)]
    if not found:
        raise ValueError(f"no Linear layer of the denoiser ends with any of {', '.join(suffixes)}")
    return found


@contextlib.contextmanager
def generated_lora(denoiser: nn.Module, factors: Factors, *, sign: float = 1.0, scale: float = 1.0) -> Iterator[None]:
    """Within the block, every layer named in `factors` outputs base(x) + sign·scale·(x·downᵀ)·upᵀ."""
    layers = dict(denoiser.named_modules())
    handles = [layers[name].register_forward_hook(_adder(down, up, sign * scale))
               for name, (down, up) in factors.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _adder(down: torch.Tensor, up: torch.Tensor, weight: float):
    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]  # (B, ..., in) with B = k·N
        repeats = x.shape[0] // down.shape[0]
        d, u = down.repeat(repeats, 1, 1).to(x.dtype), up.repeat(repeats, 1, 1).to(x.dtype)
        flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (B, L, in)
        update = torch.bmm(torch.bmm(flat, d.transpose(1, 2)), u.transpose(1, 2))  # (B, L, out)
        return output + weight * update.reshape(output.shape)

    return hook


def mean_lora(factors: list[Factors]) -> Factors:
    """One LoRA whose update is exactly the mean of several: Σ_i (1/n)·up_i·down_i is the LoRA whose
    `down` stacks the down_i (rank n·r) and whose `up` places the up_i/n side by side. A mean of
    the factors themselves would not do: (Σ up_i)(Σ down_i) has cross terms up_i·down_j."""
    count = len(factors)
    return {name: (torch.cat([lora[name][0] for lora in factors], dim=1),  # downs stacked: (N, n·r, in)
                   torch.cat([lora[name][1] / count for lora in factors], dim=2))  # ups side by side: (N, out, n·r)
            for name in factors[0]}
