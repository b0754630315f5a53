"""`analogize merge`: combine several pairedit edits into one edit file, each at a weight."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AnalogizeError

HELP = "combine pairedit edits into one, each at a weight"
EXAMPLE = """\
example:
  analogize merge warm.edit grain.edit --weights 1,0.5 -o warm-grain.edit
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("edits", type=Path, nargs="+", help="pairedit edit files, two or more")
    parser.add_argument("-o", "--output", type=Path, required=True, help="edit file to write")
    parser.add_argument("--weights", help="comma-separated, one per edit (default: 1 each)")


def run(args: argparse.Namespace) -> int:
    from ..editfile import load_edit, save_edit
    from ..methods.pairedit import PairEditEdit, merge_edits

    edits = [load_edit(path) for path in args.edits]
    for path, edit in zip(args.edits, edits):
        if not isinstance(edit, PairEditEdit):
            raise AnalogizeError(f"{path}: a {edit.method} edit; merge combines pairedit edits")
    try:
        weights = [float(value) for value in args.weights.split(",")] if args.weights else [1.0] * len(edits)
    except ValueError:
        raise AnalogizeError(f"--weights {args.weights!r}: give numbers separated by commas, e.g. 1,0.5") from None
    save_edit(merge_edits(edits, weights), args.output)
    print(f"merged {len(edits)} edits -> {args.output}")
    return 0
