"""`analogize train-pbe`: train a Paint by Example model, self-supervised, on images with object
boxes (the paper's recipe: each box is cut out as the exemplar and repainted from it).

It trains a model for `analogize paint`, not an edit, so it is not `learn`; checkpoints go to
OUTPUT.run/, so --resume continues a stopped run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import AnalogizeError
from .common import add_common_options, add_training_options, training_flags

HELP = "train a Paint-by-Example model on images with object boxes"
EXAMPLE = """\
example:
  analogize train-pbe objects/ -o my-pbe --base-model Fantasy-Studio/Paint-by-Example --preset gpu
  analogize train-pbe objects/ -o my-pbe --base-model SD15_DIR --clip-model CLIP_DIR --preset gpu

objects/boxes.json maps each image's file name to its boxes: {"photo.jpg": [[x0, y0, x1, y1], ...]}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("images", type=Path, help="folder of images with boxes.json")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="folder for the trained model (checkpoints in OUTPUT.run/)")
    parser.add_argument("--base-model",
                        help="Paint-by-Example folder to continue, or Stable Diffusion 1.x to start from")
    parser.add_argument("--clip-model", help="CLIP vision model folder (with a Stable Diffusion base model)")
    parser.add_argument("--preset", help="tiny (tests) or gpu (512 px on one GPU); default: the paper's settings")
    parser.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="images per batch and process (default: the preset's)")
    parser.add_argument("--learning-rate", type=float, help="AdamW learning rate (default: the preset's)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUTPUT.run/")
    add_training_options(parser)


def run(args: argparse.Namespace) -> int:
    try:
        from ..methods.paint_by_example import BoxedImages, train_paint_by_example, training_config
    except ImportError as error:
        raise AnalogizeError(f"train-pbe needs {error.name}; pip install 'analogize[diffusion]'") from None
    from ..atomic import write_folder_atomic
    from ..distributed import process_state

    if args.output.exists():
        raise AnalogizeError(f"{args.output}: exists; choose another -o (or delete it) so no model is overwritten")
    flags = {**training_flags(args), "clip_model": args.clip_model, "batch_size": args.batch_size,
             "learning_rate": args.learning_rate}
    config = training_config(args.preset, **flags)
    images = BoxedImages.from_folder(args.images)
    model = train_paint_by_example(images, config, args.output, resume=args.resume, progress=args.progress)
    if process_state().is_main_process:
        write_folder_atomic(args.output, model.save_pretrained)
        print(f"trained Paint by Example for {config.steps} step(s) on {len(images.paths)} image(s) -> {args.output}")
    return 0
