"""`analogize paint`: Paint by Example (CVPR 2023), a masked region of each photo repainted after an
exemplar image, by a pretrained (or `analogize train-pbe`-trained) model.

It runs `apply`'s batch loop: finished photos are skipped, a failing photo is reported and the
rest go on, and the folder gets a summary file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AnalogizeError
from .common import add_common_options, add_device_options, batch_options, report_batch

HELP = "Paint by Example: repaint a masked region after an exemplar image (pretrained model)"
EXAMPLE = """\
example:
  analogize paint street.jpg --exemplar red-car.png --box 120,300,480,520 -o painted/ \\
      --base-model Fantasy-Studio/Paint-by-Example
  # every photo in photos/ with its mask beside it (photos/NAME_mask.png):
  analogize paint photos/ --exemplar hat.png -o painted/ --base-model PBE_DIR
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("images", type=Path, nargs="+",
                        help="photos, or folders of photos; a photo's mask is --mask, --box, NAME_mask.png beside "
                             "it, or its transparent pixels")
    parser.add_argument("--exemplar", type=Path, required=True, help="image of what to paint in")
    parser.add_argument("--exemplar-mask", type=Path, help="white = the object in the exemplar (the rest is ignored)")
    parser.add_argument("--mask", type=Path, help="greyscale image, any size: white = repaint (for every photo)")
    parser.add_argument("--box", help="x0,y0,x1,y1 in pixels: repaint this box (for every photo)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the results")
    parser.add_argument("--base-model", required=True,
                        help="Paint-by-Example folder (Fantasy-Studio/Paint-by-Example, or from train-pbe) or "
                             "cached hub id")
    parser.add_argument("--steps", type=int, default=50, help="denoising steps (default %(default)s)")
    parser.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance (1 = off)")
    parser.add_argument("--resolution", type=int,
                        help="side of the crop around the mask the model sees (default: the model's own, 512)")
    parser.add_argument("--context", type=float, default=2.0,
                        help="that crop's side in multiples of the mask's extent (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the noise (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="redo photos whose output exists")
    add_device_options(parser, "the model's weights and activations (fp16 needs a GPU; default %(default)s)", "fp32")


def run(args: argparse.Namespace) -> int:
    try:
        from ..methods.paint_by_example import PaintByExampleModel, paint
    except ImportError as error:
        raise AnalogizeError(f"paint needs {error.name}; pip install 'analogize[diffusion]'") from None
    from ..batch import expand_images, run_batch
    from ..devices import use_device
    from ..exemplars import MASK_SUFFIX, mask_for_photo
    from ..images import load_image

    if args.mask and args.box:
        raise AnalogizeError("give --mask or --box, not both")
    photos = [path for path in expand_images(args.images) if not path.stem.endswith(MASK_SUFFIX)]
    exemplar = load_image(args.exemplar, args.max_pixels)
    exemplar_mask = load_image(args.exemplar_mask, args.max_pixels) if args.exemplar_mask else None
    given_mask = load_image(args.mask, args.max_pixels) if args.mask else None
    device = use_device(args.device)  # auto: this process's GPU, one per process
    model = PaintByExampleModel.from_pretrained(args.base_model, args.dtype).to(device)
    backbone = model.backbone(device, args.resolution)

    def painted(path: Path):
        photo = load_image(path, args.max_pixels)
        mask = given_mask if given_mask is not None else mask_for_photo(path, photo.shape[:2], args.box, args.max_pixels)
        return paint(model, backbone, photo, mask, exemplar, exemplar_mask=exemplar_mask, steps=args.steps,
                     guidance=args.guidance, seed=args.seed, context=args.context, progress=args.progress)

    summary = run_batch(photos, painted, args.output, {"method": "paint-by-example", "exemplar": str(args.exemplar),
                                                       "base_model": args.base_model}, **batch_options(args))
    return report_batch(summary, args.output, "painted")
