"""`analogize edit`: PIXELS (AAAI 2025), a photo edited towards exemplar images, held to the source
per pixel by an edit map, on a pretrained diffusion backbone.

The output records its history (OUTPUT.history.json), so editing an earlier output continues it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AnalogizeError
from .common import add_common_options, add_device_options

HELP = "PIXELS: edit a photo towards exemplar images, per pixel (pretrained backbone)"
EXAMPLE = """\
example:
  analogize edit room.jpg --exemplar repainted.png --map keep-floor.png -o room2.png \\
      --base-model SD2_DIR
  # then a lamp pasted at scale 0.3, left 400, top 120, continuing room2.png's history:
  analogize edit room2.png --exemplar lamp.png@0.3,400,120 -o room3.png --base-model SD2_DIR
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("source", type=Path, help="the photo to edit (an earlier edit's output continues its history)")
    parser.add_argument("--exemplar", action="append", required=True, metavar="IMAGE[@SCALE,LEFT,TOP]",
                        help="exemplar image, aligned with the source; with @scale,left,top it is scaled and "
                             "pasted onto the source there (and its map defaults to that area). Repeatable")
    parser.add_argument("--map", action="append", type=Path, default=[],
                        help="edit map per exemplar, in order: white keeps the source, black takes the exemplar")
    parser.add_argument("-o", "--output", type=Path, required=True, help="image to write")
    parser.add_argument("--base-model", required=True, help="diffusers pipeline folder (or cached hub id)")
    parser.add_argument("--prior", default="", help="Kandinsky 2.2 decoders only: the prior pipeline's folder "
                                                    "(kandinsky-2-2-prior), which turns --prompt into the condition")
    parser.add_argument("--steps", type=int, default=50,
                        help="levels of the noise grid; img2img runs the last --strength of them (default %(default)s)")
    parser.add_argument("--strength", type=float, default=1.0, help="img2img strength in (0, 1]")
    parser.add_argument("--prompt", default="", help="text condition (default: none)")
    parser.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance (1 = off)")
    parser.add_argument("--resolution", type=int, default=512, help="longer side the model works at")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the noise (default 0)")
    add_device_options(parser, "the backbone's weights and activations (fp16 needs a GPU; default %(default)s)", "fp32")


def run(args: argparse.Namespace) -> int:
    from ..backbones import BackboneConfig, load_backbone
    from ..devices import use_device
    from ..exemplars import ExemplarFile, pixels_step

    if len(args.map) > len(args.exemplar):
        raise AnalogizeError(f"{len(args.map)} --map for {len(args.exemplar)} --exemplar; give at most one map each")
    exemplars = []
    for index, given in enumerate(args.exemplar):
        path, _, placement = given.partition("@")
        try:
            scale, left, top = (float(value) for value in placement.split(",")) if placement else (1.0, 0.0, 0.0)
        except ValueError:
            raise AnalogizeError(f"--exemplar {given}: write the placement as @scale,left,top, e.g. @0.5,40,10") from None
        exemplars.append(ExemplarFile(Path(path), args.map[index] if index < len(args.map) else None,
                                      (scale, round(left), round(top)) if placement else None))
    config = BackboneConfig(base_model=args.base_model, dtype=args.dtype, device=str(use_device(args.device)),
                            resolution=args.resolution)
    history = pixels_step(lambda: load_backbone(config, prior=args.prior), args.base_model, args.source, exemplars, args.output, steps=args.steps,
                          strength=args.strength, seed=args.seed, prompt=args.prompt, guidance=args.guidance,
                          prior=args.prior, max_pixels=args.max_pixels, progress=args.progress)
    print(f"edited {args.source} towards {len(exemplars)} exemplar(s) -> {args.output} (step {len(history)})")
    return 0
