"""`analogize methods`: every method, what it is and needs, and its presets.

It reads the registry's light METHOD_INFO, so it imports no method (and no torch).
"""

from __future__ import annotations

import argparse

from ..methods import METHOD_INFO

HELP = "list the methods and what each needs"
EXAMPLE = """\
example:
  analogize methods
"""

EXEMPLAR_METHODS = (
    ("pixels", "PIXELS (AAAI 2025), `analogize edit`: a photo edited towards exemplars, held to the source per "
               "pixel by a map", "a downloaded diffusers pipeline (--base-model): SD 2.x, SDXL (refiner), FLUX.1, "
               "Kandinsky 2.2 with --prior"),
    ("paint-by-example", "Paint by Example (CVPR 2023), `analogize paint`: a masked region repainted after an "
                         "exemplar image; `analogize train-pbe` trains the model",
     "the downloaded Paint-by-Example checkpoint (--base-model)"),
)
"""Methods with commands of their own, not `learn`: (name, summary, needs)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags: it only lists."""


def run(args: argparse.Namespace) -> int:
    for method in METHOD_INFO.values():
        presets = ", ".join(method.presets) or "-"
        print(f"{method.name:<12} {method.summary}")
        print(f"{'':<12} needs: {method.needs}; presets: {presets}")
    print("\nExemplar methods (no pairs: an exemplar image and a per-photo map or mask; their own commands):")
    for name, summary, needs in EXEMPLAR_METHODS:
        print(f"{name:<12} {summary}")
        print(f"{'':<12} needs: {needs}")
    return 0
