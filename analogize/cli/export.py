"""`analogize export`: write the LoRAs a pairedit or loc edit is made of as files that diffusers
(`pipe.load_lora_weights`) and kohya/ComfyUI load, so the edit runs outside analogize."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AnalogizeError

HELP = "write a LoRA edit's LoRAs for diffusers and kohya/ComfyUI"
EXAMPLE = """\
example:
  analogize export sketch.edit -o sketch-loras/   # prints each file it writes
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("edit", type=Path, help="a pairedit or loc edit file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to write into")


def run(args: argparse.Namespace) -> int:
    from ..editfile import load_edit
    from ..methods.lora_files import export_loras

    edit = load_edit(args.edit)
    if not edit.loras():
        raise AnalogizeError(f"{args.edit}: a {edit.method} edit has no LoRAs to export; export works on pairedit and loc edits")
    for path in export_loras(edit, args.output):
        print(path)
    return 0
