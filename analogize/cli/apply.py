"""`analogize apply`: apply a learned edit to photos, one result per photo in a folder.

A batch resumes: photos whose result exists are skipped unless --overwrite, a photo that fails
is reported and the rest go on, and the folder gets a summary file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..constants import DEFAULT_QUALITY, OUTPUT_FORMATS
from .common import add_common_options, add_device_options, batch_options, report_batch

HELP = "apply an edit to photos"
EXAMPLE = """\
example:
  analogize apply warm.edit holiday/ beach.jpg -o out/ --strength 0.7
  analogize apply sketch.edit big-photo.jpg -o out/ --scale 0.25   # pairs were shrunk to 1/4
  analogize apply warm.edit raw-exports/ -o out/ --format jpg --quality 90
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("edit", type=Path, help="edit file from `analogize learn`")
    parser.add_argument("images", type=Path, nargs="+", help="photos, or folders of photos")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the results")
    parser.add_argument("--strength", type=float, default=1.0, help="0 = unchanged, 1 = learned edit")
    parser.add_argument("--strength-map", type=Path, help="greyscale image: per-pixel strength (white = full)")
    parser.add_argument("--mask", type=Path, help="greyscale image: where the edit may act (white)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="edit at this fraction of the photo's size, then resize back: local effects act at "
                             "the pixel scale of the pairs, so for pairs made from photos shrunk to 1/4, use 0.25")
    parser.add_argument("--seed", type=int, default=0, help="random seed for stochastic methods")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="png", dest="file_format",
                        help="format of the results (default png); each keeps the photo's ICC profile and EXIF, "
                             "png and tiff keep 16 bits per channel (docs/cli.md has the table)")
    parser.add_argument("--quality", type=int,
                        help=f"1-100, for jpg and webp only (default {DEFAULT_QUALITY})")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo images whose output exists (default: skip them, so a stopped batch resumes)")
    add_device_options(parser, "compute dtype of an edit on a diffusion backbone (pairedit, loc; fp16 needs a GPU; "
                               "default: the one it learned with); other edits compute in fp32 and refuse it")


def run(args: argparse.Namespace) -> int:
    from ..batch import apply_edit, expand_images
    from ..devices import use_device
    from ..editfile import load_edit
    from ..images import check_quality, load_image

    check_quality(OUTPUT_FORMATS[args.file_format], args.quality)  # before the edit is loaded
    edit = load_edit(args.edit).to(use_device(args.device), args.dtype)
    strength_map = load_image(args.strength_map, args.max_pixels) if args.strength_map else None
    mask = load_image(args.mask, args.max_pixels) if args.mask else None
    summary = apply_edit(edit, args.edit, expand_images(args.images), args.output, strength=args.strength,
                         strength_map=strength_map, mask=mask, seed=args.seed, scale=args.scale,
                         max_pixels=args.max_pixels, file_format=args.file_format, quality=args.quality,
                         **batch_options(args))
    return report_batch(summary, args.output, f"applied {edit.method} to")
