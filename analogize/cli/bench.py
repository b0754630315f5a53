"""`analogize bench`: the built-in benchmark, methods learning procedural edits with exact answers.

Each method learns each edit from crops of the photo corpus and is scored on held-out crops;
the report (a table per shots count, contact sheets) lands in --out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_common_options

HELP = "built-in benchmark on procedural edits"
EXAMPLE = """\
example:
  analogize bench --methods colormap,unet --edits classic --shots 1,5,20 --out bench-output/
  analogize bench --methods "pix2pix[steps=2400],fewshot" --preset gpu-256
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("--methods", default="identity,colormap,unet,pix2pix",
                        help="comma-separated; NAME[setting=value,...] gives a method settings of its own, "
                             "e.g. pix2pix[steps=2400] or fewshot[n_to_n=false]")
    parser.add_argument("--edits", default=None, help="comma-separated edits or sets (classic, filters; default: all)")
    parser.add_argument("--shots", type=shot_list, default=[20],
                        help="training pairs per edit; a comma-separated list for a shots curve (1,3,5,10,20)")
    parser.add_argument("--size", type=int, default=128, help="crop size in pixels")
    parser.add_argument("--test-images", type=int, default=12, help="held-out test crops per edit")
    parser.add_argument("--preset", help="preset for every method that has it (default: each method's own; "
                                         "`analogize learn --help` lists them)")
    parser.add_argument("--validation", action="store_true",
                        help="score on a validation split of the training photos instead of the test photos "
                             "(for choosing settings)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the crops and the training (default 0)")
    parser.add_argument("--out", type=Path, default=Path("bench-output"),
                        help="folder for the report (default %(default)s)")


def shot_list(text: str) -> list[int]:
    """--shots as a list of ints; run_bench checks the counts themselves."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of pair counts") from None


def run(args: argparse.Namespace) -> int:
    from ..data.edits import EDITS
    from ..bench.runner import run_bench, split_methods

    run_bench(
        split_methods(args.methods),
        [name for name in args.edits.split(",") if name] if args.edits else list(EDITS),
        shots=args.shots, size=args.size, test_images=args.test_images, preset=args.preset,
        seed=args.seed, out_dir=args.out, validation=args.validation, progress=args.progress,
    )
    print(f"report: {args.out / 'index.html'}")
    return 0
