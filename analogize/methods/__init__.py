"""The method registry: name -> Method, and what `analogize methods` prints.

Every method's module imports torch, which takes seconds. So the registry is two layers:
`METHOD_INFO` says what each method is, needs and offers without importing it (the CLI lists
methods and presets from it), and `REGISTRY` imports a method's module the first time the method
is looked up. The entries repeat what each Method class declares; tests/test_cli.py checks that
they agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import AnalogizeError

if TYPE_CHECKING:
    from .base import Method

NEEDS_NOTHING = "nothing: runs on this CPU with no downloaded weights"


@dataclass(frozen=True)
class MethodInfo:
    """A registered method as the CLI shows it, and where its Method class lives."""

    name: str
    module: str
    """The module under analogize.methods that defines `class_name`."""
    class_name: str
    summary: str
    presets: tuple[str, ...] = ()
    default_preset: str | None = None
    needs: str = NEEDS_NOTHING

    def load(self) -> Method:
        return getattr(importlib.import_module(f".{self.module}", __name__), self.class_name)()


METHOD_INFO: dict[str, MethodInfo] = {info.name: info for info in (
    MethodInfo("identity", "identity", "Identity", "baseline: leaves the photo unchanged"),
    MethodInfo("colormap", "colormap", "ColorMap",
               "baseline: a 3D colour look-up table fitted to all pairs (colour grades; seconds on CPU)",
               presets=("tiny", "cpu", "gpu-256", "gpu-512"), default_preset="cpu"),
    MethodInfo("pix2pix", "pix2pix", "Pix2Pix",
               "baseline: conditional GAN (U-Net + PatchGAN, Isola et al. 2017) trained on the pairs",
               presets=("tiny", "cpu", "gpu-256", "gpu-512"), default_preset="cpu"),
    MethodInfo("unet", "unet", "UNetMethod",
               "baseline: a plain U-Net with frame positions, trained with L1 on the pairs",
               presets=("tiny", "cpu", "gpu-256"), default_preset="cpu"),
    MethodInfo("fewshot", "fewshot", "FewShot",
               "few-shot learner (Customize Your Own Paired Data): VAE + flow net + latent DiT on pairs of pairs",
               presets=("tiny", "cpu", "gpu-256", "gpu-512"), default_preset="cpu"),
    MethodInfo("pairedit", "pairedit", "PairEdit",
               "PairEdit (NeurIPS 2025): content and semantic LoRAs on a pretrained diffusion model (FLUX.1, SD)",
               presets=("tiny", "gpu"),
               needs="a pretrained FLUX.1 or Stable Diffusion pipeline on disk (--base-model); a GPU for real sizes"),
    MethodInfo("loc", "loc", "Loc",
               "LoRA of Change: a trained hypernetwork turns the pairs into a LoRA for an InstructPix2Pix "
               "model, one forward pass",
               presets=("tiny", "cpu", "gpu", "gpu-512"), default_preset="cpu",
               needs="a hypernetwork folder from `analogize train-loc` (--hypernetwork DIR); training one needs the "
                     "photo corpus (cpu preset: minutes here) or a downloaded InstructPix2Pix and a GPU (gpu presets)"),
)}


class LazyRegistry(MutableMapping):
    """name -> Method instance, made on first lookup. Writable, so tests can register a method
    of their own for a while."""

    def __init__(self, entries: Iterable[MethodInfo]):
        self._methods: dict[str, MethodInfo | Method] = {info.name: info for info in entries}

    def __getitem__(self, name: str) -> Method:
        method = self._methods[name]
        if isinstance(method, MethodInfo):
            method = self._methods[name] = method.load()
        return method

    def __setitem__(self, name: str, method: Method) -> None:
        self._methods[name] = method

    def __delitem__(self, name: str) -> None:
        del self._methods[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)


REGISTRY: MutableMapping[str, Method] = LazyRegistry(METHOD_INFO.values())

DEFAULT_METHOD = "fewshot"
"""What `learn` (CLI, Python, web page) uses when no method is named: the one method that learns any
kind of edit with no pretrained weights (BENCHMARKS.md: ahead of pix2pix and colormap on the mean)."""


def get_method(name: str, source: str = "--method") -> Method:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AnalogizeError(
            f"{source}: unknown method {name!r}; choose one of {', '.join(REGISTRY)} (see `analogize methods`)"
        ) from None


def __getattr__(name: str):
    """The base classes, re-exported here as before, import torch: only on first use."""
    if name in ("Edit", "Method", "MethodConfig"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_METHOD", "Edit", "METHOD_INFO", "Method", "MethodConfig", "MethodInfo", "REGISTRY", "get_method"]
