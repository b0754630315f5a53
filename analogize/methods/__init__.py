"""The method registry: name -> Method. `analogize methods` prints it."""

from __future__ import annotations

from ..errors import AnalogizeError
from .base import Edit, Method, MethodConfig
from .colormap import ColorMap
from .fewshot import FewShot
from .identity import Identity
from .loc import Loc
from .pairedit import PairEdit
from .pix2pix import Pix2Pix
from .unet import UNetMethod

REGISTRY: dict[str, Method] = {method.name: method for method in (Identity(), ColorMap(), Pix2Pix(), UNetMethod(), FewShot(), PairEdit(), Loc())}

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


__all__ = ["DEFAULT_METHOD", "Edit", "Method", "MethodConfig", "REGISTRY", "get_method"]
