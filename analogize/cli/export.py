"""`analogize export`: write an edit as files other tools load, so it runs outside analogize.
A pairedit or loc edit's LoRAs go into a folder (diffusers' `pipe.load_lora_weights`, and
kohya-style keys for ComfyUI / A1111); a colormap edit's LUT becomes one `.cube` file (Resolve,
Photoshop, ffmpeg `lut3d`, OpenColorIO). Which loader each file is verified against:
docs/methods/pairedit.md and docs/methods/colormap.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AnalogizeError

HELP = "write an edit for other tools: LoRA files (pairedit, loc) or a .cube LUT (colormap)"
EXAMPLE = """\
example:
  analogize export sketch.edit -o sketch-loras/   # pairedit / loc: prints each file it writes
  analogize export warm.edit -o warm.cube         # colormap: a 3-D LUT
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("edit", type=Path, help="a pairedit, loc or colormap edit file")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="folder for a LoRA edit's files; NAME.cube for a colormap edit")


def run(args: argparse.Namespace) -> int:
    from ..editfile import load_edit
    from ..methods.colormap import ColorMapEdit
    from ..methods.lora_files import export_loras

    edit = load_edit(args.edit)
    cube = args.output.suffix.lower() == ".cube"
    if isinstance(edit, ColorMapEdit):
        if not cube:
            raise AnalogizeError(f"{args.edit}: a colormap edit exports a 3-D LUT; give -o NAME.cube")
        print(edit.write_cube(args.output, title=args.edit.stem))
        return 0
    if not edit.loras():
        raise AnalogizeError(f"{args.edit}: a {edit.method} edit has nothing to export; pairedit and loc edits "
                             "export LoRAs (-o DIR), colormap edits a .cube LUT (-o NAME.cube)")
    if cube:
        raise AnalogizeError(f"{args.edit}: a {edit.method} edit exports LoRA files, not a LUT; give -o DIR")
    for path in export_loras(edit, args.output):
        print(path)
    return 0
