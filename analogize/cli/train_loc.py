"""`analogize train-loc`: train LoRA of Change's hypernetwork, which `learn --method loc` then
uses to turn pairs into a LoRA in one forward pass.

The tiny and cpu presets first train their own small InstructPix2Pix base model; the gpu presets
build on a downloaded one (--base-model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..methods import METHOD_INFO
from .common import add_common_options

LOC = METHOD_INFO["loc"]

HELP = "train LoRA of Change's hypernetwork (then `learn --method loc`)"
EXAMPLE = """\
example:
  analogize train-loc --preset cpu -o hypernet/
  analogize learn pairs/ --method loc --hypernetwork hypernet/ -o sketch.edit
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("--data", default="procedural",
                        help="procedural (the benchmark's edits), a pairs folder, magicbrush:DIR or seed:MANIFEST")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to write the hypernetwork into")
    parser.add_argument("--preset", default=LOC.default_preset,
                        help=f"{', '.join(LOC.presets)} (default %(default)s; tiny and cpu train their own small "
                             "base model)")
    parser.add_argument("--base-model", help="InstructPix2Pix diffusers folder (gpu presets; tiny/cpu train one)")
    parser.add_argument("--hold-out", help="procedural edits kept out of training, comma-separated "
                                           "(default tone,sketch,sharpen; '' = none)")
    parser.add_argument("--steps", type=int, help="hypernetwork training steps")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--checkpoint-every", type=int, help="steps between checkpoints in OUTPUT")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoints in OUTPUT")


def run(args: argparse.Namespace) -> int:
    from ..methods import get_method
    from ..methods.loc import train_loc

    hold_out = None if args.hold_out is None else tuple(name for name in args.hold_out.split(",") if name)
    config = get_method("loc").make_config(args.preset, data=args.data, base_model=args.base_model, hold_out=hold_out,
                                           steps=args.steps, seed=args.seed, checkpoint_every=args.checkpoint_every)
    folder = train_loc(config, args.output, resume=args.resume, progress=args.progress)
    print(f"trained a LoRA of Change hypernetwork -> {folder}; use it with "
          f"`analogize learn PAIRS --method loc --hypernetwork {folder} -o EDIT`")
    return 0
