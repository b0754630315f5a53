"""The `analogize` command. Its interface is a contract (see docs/cli.md and DESIGN.md).

Every problem with the user's input ends the command with one line on stderr and exit status 2;
no traceback. Long work shows a progress bar unless --quiet is given or stderr is not a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import AnalogizeError
from .images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES
from .training import LOG_DESTINATIONS, MIXED_PRECISION_MODES

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.progress = not args.quiet and sys.stderr.isatty()
    try:
        return args.handler(args) or 0
    except AnalogizeError as error:
        print(f"analogize: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("analogize: interrupted; `learn --resume` continues training from the last checkpoint",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if "torch" in sys.modules:  # only commands that used torch can have joined a process group
            from .distributed import leave_process_group

            leave_process_group()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="analogize",
        description="Learn an image edit from before/after examples and apply it to new photos.",
    )
    parser.add_argument("--version", action="version", version=f"analogize {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    common.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images larger than this many pixels (default %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    learn = commands.add_parser("learn", parents=[common], help="learn an edit from a folder of pairs")
    learn.add_argument("pairs", type=Path, help="folder with before/ and after/ (or source/ and target/)")
    learn.add_argument("-o", "--output", type=Path, required=True, help="edit file to write")
    learn.add_argument("--method", help="learning method (default: fewshot; see `analogize methods`)")
    learn.add_argument("--preset", help="named settings of the method (see `analogize methods`)")
    learn.add_argument("--steps", type=int, help="training steps (trainable methods)")
    learn.add_argument("--seed", type=int, help="random seed (default 0)")
    learn.add_argument("--resume", action="store_true",
                       help="continue from the newest checkpoint in OUTPUT.run/")
    learn.add_argument("--resize-pairs", action="store_true",
                       help="resize after images whose size differs from their before image")
    learn.add_argument("--config", type=Path, help="YAML or JSON file of settings (pairedit also reads the "
                                                   "original's train_image.yaml); flags given here win")
    learn.add_argument("--base-model", help="pretrained diffusers pipeline (folder or cached hub id) for "
                                            "methods that build on one (pairedit)")
    learn.add_argument("--hypernetwork", type=Path, help="loc: folder trained by `analogize train-loc`")
    add_training_options(learn.add_argument_group("training (trainable methods; defaults from the preset)"))
    learn.set_defaults(handler=run_learn)

    apply = commands.add_parser("apply", parents=[common], help="apply an edit to photos")
    apply.add_argument("edit", type=Path, help="edit file from `analogize learn`")
    apply.add_argument("images", type=Path, nargs="+", help="photos, or folders of photos")
    apply.add_argument("-o", "--output", type=Path, required=True, help="folder for the results")
    apply.add_argument("--strength", type=float, default=1.0, help="0 = unchanged, 1 = learned edit")
    apply.add_argument("--strength-map", type=Path, help="greyscale image: per-pixel strength (white = full)")
    apply.add_argument("--mask", type=Path, help="greyscale image: where the edit may act (white)")
    apply.add_argument("--scale", type=float, default=1.0,
                       help="edit at this fraction of the photo's size, then resize back: local effects act at "
                            "the pixel scale of the pairs, so for pairs made from photos shrunk to 1/4, use 0.25")
    apply.add_argument("--seed", type=int, default=0, help="random seed for stochastic methods")
    apply.add_argument("--overwrite", action="store_true",
                       help="redo images whose output exists (default: skip them, so a stopped batch resumes)")
    apply.set_defaults(handler=run_apply)

    evaluate = commands.add_parser("evaluate", parents=[common],
                                   help="score an edit on pairs with known answers")
    evaluate.add_argument("edit", type=Path)
    evaluate.add_argument("pairs", type=Path)
    evaluate.add_argument("--report", type=Path, help="report folder (default: EDIT-report/ beside the edit)")
    evaluate.add_argument("--resize-pairs", action="store_true")
    evaluate.set_defaults(handler=run_evaluate)

    bench = commands.add_parser("bench", parents=[common], help="built-in benchmark on procedural edits")
    bench.add_argument("--methods", default="identity,colormap,unet,pix2pix",
                       help="comma-separated; NAME[setting=value,...] gives a method settings of its own, "
                            "e.g. pix2pix[steps=2400] or fewshot[n_to_n=false]")
    bench.add_argument("--edits", default=None,
                       help="comma-separated edits or sets (classic, filters; default: all)")
    bench.add_argument("--shots", type=shot_list, default=[20],
                       help="training pairs per edit; a comma-separated list for a shots curve (1,3,5,10,20)")
    bench.add_argument("--size", type=int, default=128, help="crop size in pixels")
    bench.add_argument("--test-images", type=int, default=12, help="held-out test crops per edit")
    bench.add_argument("--preset", help="preset for every method that has it (default: each method's own)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--out", type=Path, default=Path("bench-output"))
    bench.set_defaults(handler=run_bench_command)

    demo = commands.add_parser("demo", parents=[common], help="the whole pipeline on packaged photos")
    demo.add_argument("--out", type=Path, default=Path("demo-output"))
    demo.set_defaults(handler=run_demo_command)

    edit = commands.add_parser("edit", parents=[common],
                               help="PIXELS: edit a photo towards exemplar images, per pixel (pretrained backbone)")
    edit.add_argument("source", type=Path, help="the photo to edit (an earlier edit's output continues its history)")
    edit.add_argument("--exemplar", action="append", required=True, metavar="IMAGE[@SCALE,LEFT,TOP]",
                      help="exemplar image, aligned with the source; with @scale,left,top it is scaled and "
                           "pasted onto the source there (and its map defaults to that area). Repeatable")
    edit.add_argument("--map", action="append", type=Path, default=[],
                      help="edit map per exemplar, in order: white keeps the source, black takes the exemplar")
    edit.add_argument("-o", "--output", type=Path, required=True, help="image to write")
    edit.add_argument("--base-model", required=True, help="diffusers pipeline folder (or cached hub id)")
    edit.add_argument("--prior", default="", help="Kandinsky 2.2 decoders only: the prior pipeline's folder "
                                                  "(kandinsky-2-2-prior), which turns --prompt into the condition")
    edit.add_argument("--steps", type=int, default=50)
    edit.add_argument("--strength", type=float, default=1.0, help="img2img strength in (0, 1]")
    edit.add_argument("--prompt", default="")
    edit.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance (1 = off)")
    edit.add_argument("--resolution", type=int, default=512, help="longer side the model works at")
    edit.add_argument("--dtype", default="fp32")
    edit.add_argument("--seed", type=int, default=0)
    edit.set_defaults(handler=run_pixels_edit)

    paint = commands.add_parser("paint", parents=[common],
                                help="Paint by Example: repaint a masked region after an exemplar image (pretrained model)")
    paint.add_argument("images", type=Path, nargs="+",
                       help="photos, or folders of photos; a photo's mask is --mask, --box, NAME_mask.png beside it, "
                            "or its transparent pixels")
    paint.add_argument("--exemplar", type=Path, required=True, help="image of what to paint in")
    paint.add_argument("--exemplar-mask", type=Path, help="white = the object in the exemplar (the rest is ignored)")
    paint.add_argument("--mask", type=Path, help="greyscale image, any size: white = repaint (for every photo)")
    paint.add_argument("--box", help="x0,y0,x1,y1 in pixels: repaint this box (for every photo)")
    paint.add_argument("-o", "--output", type=Path, required=True, help="folder for the results")
    paint.add_argument("--base-model", required=True,
                       help="Paint-by-Example folder (Fantasy-Studio/Paint-by-Example, or from train-pbe) or cached hub id")
    paint.add_argument("--steps", type=int, default=50)
    paint.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance (1 = off)")
    paint.add_argument("--resolution", type=int,
                       help="side of the crop around the mask the model sees (default: the model's own, 512)")
    paint.add_argument("--context", type=float, default=2.0,
                       help="that crop's side in multiples of the mask's extent (default %(default)s)")
    paint.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    paint.add_argument("--device", default="auto")
    paint.add_argument("--seed", type=int, default=0)
    paint.add_argument("--overwrite", action="store_true", help="redo photos whose output exists")
    paint.set_defaults(handler=run_paint)

    train_pbe = commands.add_parser("train-pbe", parents=[common],
                                    help="train a Paint-by-Example model on images with object boxes")
    train_pbe.add_argument("images", type=Path, help="folder of images with boxes.json")
    train_pbe.add_argument("-o", "--output", type=Path, required=True,
                           help="folder for the trained model (checkpoints in OUTPUT.run/)")
    train_pbe.add_argument("--base-model", help="Paint-by-Example folder to continue, or Stable Diffusion 1.x to start from")
    train_pbe.add_argument("--clip-model", help="CLIP vision model folder (with a Stable Diffusion base model)")
    train_pbe.add_argument("--preset", help="tiny (tests) or gpu")
    train_pbe.add_argument("--steps", type=int)
    train_pbe.add_argument("--batch-size", type=int)
    train_pbe.add_argument("--learning-rate", type=float)
    train_pbe.add_argument("--seed", type=int)
    train_pbe.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUTPUT.run/")
    add_training_options(train_pbe)
    train_pbe.set_defaults(handler=run_train_pbe)

    train_loc = commands.add_parser("train-loc", parents=[common],
                                    help="train LoRA of Change's hypernetwork (then `learn --method loc`)")
    train_loc.add_argument("--data", default="procedural",
                           help="procedural (the benchmark's edits), a pairs folder, magicbrush:DIR or seed:MANIFEST")
    train_loc.add_argument("-o", "--output", type=Path, required=True, help="folder to write the hypernetwork into")
    train_loc.add_argument("--preset", default="cpu", help="tiny, cpu (trains its own small base model), gpu, gpu-512")
    train_loc.add_argument("--base-model", help="InstructPix2Pix diffusers folder (gpu presets; tiny/cpu train one)")
    train_loc.add_argument("--hold-out", help="procedural edits kept out of training, comma-separated "
                                              "(default tone,sketch,sharpen; '' = none)")
    train_loc.add_argument("--steps", type=int, help="hypernetwork training steps")
    train_loc.add_argument("--seed", type=int)
    train_loc.add_argument("--checkpoint-every", type=int)
    train_loc.add_argument("--resume", action="store_true", help="continue from the newest checkpoints in OUTPUT")
    train_loc.set_defaults(handler=run_train_loc)

    export = commands.add_parser("export", help="write a LoRA edit's LoRAs for diffusers and kohya/ComfyUI")
    export.add_argument("edit", type=Path)
    export.add_argument("-o", "--output", type=Path, required=True, help="folder to write into")
    export.set_defaults(handler=run_export, quiet=True, max_pixels=DEFAULT_MAX_PIXELS)

    merge = commands.add_parser("merge", help="combine pairedit edits into one, each at a weight")
    merge.add_argument("edits", type=Path, nargs="+")
    merge.add_argument("-o", "--output", type=Path, required=True, help="edit file to write")
    merge.add_argument("--weights", help="comma-separated, one per edit (default: 1 each)")
    merge.set_defaults(handler=run_merge, quiet=True, max_pixels=DEFAULT_MAX_PIXELS)

    serve = commands.add_parser("serve", help="the web app: teach and apply edits in the browser")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: this machine only; 0.0.0.0 = every network)")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--workdir", type=Path, default=Path("analogize-serve"),
                       help="folder for uploads, jobs and results (default %(default)s)")
    serve.add_argument("--max-upload-mb", type=int, default=50, help="largest file one upload may be")
    serve.add_argument("--models-dir", type=Path,
                       help="folder of pretrained model folders the pages may use, by name (default: none)")
    serve.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                       help="an account that may sign in (repeatable); needed to serve other machines")
    serve.add_argument("--auth-file", type=Path,
                       help="file of accounts, one user:password a line (keeps passwords out of the process list)")
    serve.add_argument("--insecure", action="store_true",
                       help="serve a non-loopback --host with no password (anyone who reaches the port can use it)")
    serve.set_defaults(handler=run_serve, quiet=True, max_pixels=DEFAULT_MAX_PIXELS)

    methods = commands.add_parser("methods", help="list the methods and what each needs")
    methods.set_defaults(handler=run_methods, quiet=True, max_pixels=DEFAULT_MAX_PIXELS)
    return parser


def add_training_options(group) -> None:
    """The shared training loop's flags (defaults come from the preset)."""
    group.add_argument("--checkpoint-every", type=int, help="steps between checkpoints in OUTPUT.run/")
    group.add_argument("--gradient-accumulation", type=int, dest="gradient_accumulation_steps",
                       help="batches summed into each update")
    group.add_argument("--mixed-precision", choices=MIXED_PRECISION_MODES)
    group.add_argument("--log", choices=LOG_DESTINATIONS, dest="log_with",
                       help="training log in OUTPUT.run/: losses.csv, tensorboard/ or none (default csv)")


def training_flags(args: argparse.Namespace) -> dict:
    return dict(steps=args.steps, seed=args.seed, checkpoint_every=args.checkpoint_every,
                gradient_accumulation_steps=args.gradient_accumulation_steps, mixed_precision=args.mixed_precision,
                log_with=args.log_with, base_model=args.base_model)


def run_learn(args: argparse.Namespace) -> int:
    from .distributed import process_state
    from .editfile import save_edit
    from .methods import DEFAULT_METHOD, get_method
    from .pairs import PairSet

    method = get_method(args.method or DEFAULT_METHOD)
    from_file = method.settings_from_file(read_settings_file(args.config), str(args.config)) if args.config else {}
    flags = {**training_flags(args), "hypernetwork": str(args.hypernetwork) if args.hypernetwork else None}
    config = method.make_config(args.preset, **{**from_file, **{k: v for k, v in flags.items() if v is not None}})
    pairs = PairSet.from_folder(args.pairs, resize_mismatched=args.resize_pairs, max_pixels=args.max_pixels)
    run_dir = args.output.with_name(args.output.name + ".run")
    edit = method.learn(pairs, config, run_dir=run_dir, resume=args.resume, progress=args.progress)
    if process_state().is_main_process:  # every process ends with the same edit; one writes it
        save_edit(edit, args.output)
        seconds = edit.provenance.seconds if edit.provenance else 0.0
        print(f"learned {method.name} from {len(pairs)} pair(s) in {seconds:.1f} s -> {args.output}")
    return 0


def read_settings_file(path: Path) -> dict:
    import yaml

    try:
        values = yaml.safe_load(path.read_text())  # JSON is YAML too
    except OSError as error:
        raise AnalogizeError(f"{path}: cannot be read ({error.strerror}); check the path") from None
    except yaml.YAMLError as error:
        raise AnalogizeError(f"{path}: is not valid YAML or JSON ({str(error).splitlines()[0]}); fix the file") from None
    if not isinstance(values, dict):
        raise AnalogizeError(f"{path}: holds no settings (expected `name: value` lines)")
    return values


def run_apply(args: argparse.Namespace) -> int:
    from .batch import apply_edit, expand_images
    from .distributed import process_state
    from .editfile import load_edit
    from .images import load_image

    edit = load_edit(args.edit).to(process_state().device)
    strength_map = load_image(args.strength_map, args.max_pixels) if args.strength_map else None
    mask = load_image(args.mask, args.max_pixels) if args.mask else None
    summary = apply_edit(edit, args.edit, expand_images(args.images), args.output, strength=args.strength,
                         strength_map=strength_map, mask=mask, seed=args.seed, scale=args.scale,
                         max_pixels=args.max_pixels, **batch_options(args))
    return report_batch(summary, args.output, f"applied {edit.method} to")


def batch_options(args: argparse.Namespace) -> dict:
    return {"overwrite": args.overwrite, "progress": args.progress,
            "on_failure": lambda reason: print(f"analogize: error: {reason}", file=sys.stderr)}


def report_batch(summary, output: Path, verb: str) -> int:
    """The main process's one line about a finished batch; exit 2 if any photo failed."""
    from .batch import SUMMARY_NAME
    from .distributed import process_state

    if process_state().is_main_process:
        print(f"{verb} {summary.done} of {summary.images} image(s): {summary.skipped} skipped (output exists), "
              f"{len(summary.failed)} failed -> {output} (summary: {output / SUMMARY_NAME})")
    return EXIT_USER_ERROR if summary.failed else 0


def run_evaluate(args: argparse.Namespace) -> int:
    from .editfile import load_edit
    from .evaluation import evaluate_edit, score_table
    from .pairs import PairSet
    from .report import SheetRow, contact_sheet, markdown_table, write_report

    edit = load_edit(args.edit)
    pairs = PairSet.from_folder(args.pairs, resize_mismatched=args.resize_pairs, max_pixels=args.max_pixels)
    evaluation = evaluate_edit(edit, pairs, progress=args.progress)
    header, rows = score_table(evaluation)
    sheet = contact_sheet(
        ["before", "result", "expected after"],
        [SheetRow(pair.name, [pair.before, result, pair.after]) for pair, result in zip(pairs, evaluation.results)],
    )
    report_dir = args.report or args.edit.with_name(args.edit.name + "-report")
    page = write_report(report_dir, f"analogize evaluate: {args.edit.name} on {args.pairs}",
                        evaluation.as_dict(), header, rows, {"contact_sheet": sheet})
    print(markdown_table(header, rows))
    print(f"report: {page}")
    return 0


def shot_list(text: str) -> list[int]:
    """--shots as a list of ints; run_bench checks the counts themselves."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of pair counts") from None


def run_bench_command(args: argparse.Namespace) -> int:
    from .data.edits import EDITS
    from .bench.runner import run_bench, split_methods

    run_bench(
        split_methods(args.methods),
        [name for name in args.edits.split(",") if name] if args.edits else list(EDITS),
        shots=args.shots, size=args.size, test_images=args.test_images, preset=args.preset,
        seed=args.seed, out_dir=args.out, progress=args.progress,
    )
    print(f"report: {args.out / 'index.html'}")
    return 0


def run_demo_command(args: argparse.Namespace) -> int:
    from .bench.demo import run_demo

    run_demo(args.out, progress=args.progress)
    return 0


def run_pixels_edit(args: argparse.Namespace) -> int:
    from .backbones import BackboneConfig, load_backbone
    from .exemplars import ExemplarFile, pixels_step

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
    config = BackboneConfig(base_model=args.base_model, dtype=args.dtype, resolution=args.resolution)
    history = pixels_step(lambda: load_backbone(config, prior=args.prior), args.base_model, args.source, exemplars, args.output, steps=args.steps,
                          strength=args.strength, seed=args.seed, prompt=args.prompt, guidance=args.guidance,
                          prior=args.prior, max_pixels=args.max_pixels)
    print(f"edited {args.source} towards {len(exemplars)} exemplar(s) -> {args.output} (step {len(history)})")
    return 0


def run_paint(args: argparse.Namespace) -> int:
    try:
        from .methods.paint_by_example import PaintByExampleModel, device_for, paint
    except ImportError as error:
        raise AnalogizeError(f"paint needs {error.name}; pip install 'analogize[diffusion]'") from None
    from .batch import expand_images, run_batch
    from .distributed import process_state
    from .exemplars import MASK_SUFFIX, repaint_mask
    from .images import load_image

    if args.mask and args.box:
        raise AnalogizeError("give --mask or --box, not both")
    photos = [path for path in expand_images(args.images) if not path.stem.endswith(MASK_SUFFIX)]
    exemplar = load_image(args.exemplar, args.max_pixels)
    exemplar_mask = load_image(args.exemplar_mask, args.max_pixels) if args.exemplar_mask else None
    given_mask = load_image(args.mask, args.max_pixels) if args.mask else None
    device = process_state().device if args.device == "auto" else device_for(args.device)  # one GPU per process
    model = PaintByExampleModel.from_pretrained(args.base_model, args.dtype).to(device)
    backbone = model.backbone(device, args.resolution)

    def painted(path: Path):
        photo = load_image(path, args.max_pixels)
        mask = given_mask if given_mask is not None else repaint_mask(path, photo.shape[:2], args.box, args.max_pixels)
        return paint(model, backbone, photo, mask, exemplar, exemplar_mask=exemplar_mask, steps=args.steps,
                     guidance=args.guidance, seed=args.seed, context=args.context)

    summary = run_batch(photos, painted, args.output, {"method": "paint-by-example", "exemplar": str(args.exemplar),
                                                       "base_model": args.base_model}, **batch_options(args))
    return report_batch(summary, args.output, "painted")


def run_train_pbe(args: argparse.Namespace) -> int:
    try:
        from .methods.paint_by_example import BoxedImages, train_paint_by_example, training_config
    except ImportError as error:
        raise AnalogizeError(f"train-pbe needs {error.name}; pip install 'analogize[diffusion]'") from None
    from .atomic import write_folder_atomic
    from .distributed import process_state

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


def run_export(args: argparse.Namespace) -> int:
    from .editfile import load_edit
    from .methods.lora_files import export_loras

    edit = load_edit(args.edit)
    if not edit.loras():
        raise AnalogizeError(f"{args.edit}: a {edit.method} edit has no LoRAs to export; export works on pairedit and loc edits")
    for path in export_loras(edit, args.output):
        print(path)
    return 0


def run_train_loc(args: argparse.Namespace) -> int:
    from .methods import get_method
    from .methods.loc import train_loc

    hold_out = None if args.hold_out is None else tuple(name for name in args.hold_out.split(",") if name)
    config = get_method("loc").make_config(args.preset, data=args.data, base_model=args.base_model, hold_out=hold_out,
                                           steps=args.steps, seed=args.seed, checkpoint_every=args.checkpoint_every)
    folder = train_loc(config, args.output, resume=args.resume, progress=args.progress)
    print(f"trained a LoRA of Change hypernetwork -> {folder}; use it with "
          f"`analogize learn PAIRS --method loc --hypernetwork {folder} -o EDIT`")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from .editfile import load_edit, save_edit
    from .methods.pairedit import PairEditEdit, merge_edits

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


def run_serve(args: argparse.Namespace) -> int:
    from .web.auth import check_exposure, read_credentials

    credentials = read_credentials(args.auth, args.auth_file)
    warning = check_exposure(args.host, credentials, args.insecure)
    try:
        from .web.app import serve
    except ImportError as error:
        raise AnalogizeError(f"the web app needs {error.name}; pip install 'analogize[web]'") from None
    if warning:
        print(f"analogize: WARNING: {warning}", file=sys.stderr)
    if args.models_dir is not None and not args.models_dir.is_dir():
        raise AnalogizeError(f"--models-dir {args.models_dir}: no such folder; give the folder holding the model folders")
    serve(args.workdir, args.host, args.port, args.max_upload_mb, credentials=credentials, models_dir=args.models_dir)
    return 0


def run_methods(args: argparse.Namespace) -> int:
    from .methods import REGISTRY

    for method in REGISTRY.values():
        presets = ", ".join(method.presets) or "-"
        print(f"{method.name:<12} {method.summary}")
        print(f"{'':<12} needs: {method.needs}; presets: {presets}")
    print("\nExemplar methods (no pairs: an exemplar image and a per-photo map or mask; their own commands):")
    for name, summary, needs in EXEMPLAR_METHODS:
        print(f"{name:<12} {summary}")
        print(f"{'':<12} needs: {needs}")
    return 0


EXEMPLAR_METHODS = (
    ("pixels", "PIXELS (AAAI 2025), `analogize edit`: a photo edited towards exemplars, held to the source per "
               "pixel by a map", "a downloaded diffusers pipeline (--base-model): SD 2.x, SDXL (refiner), FLUX.1, "
               "Kandinsky 2.2 with --prior"),
    ("paint-by-example", "Paint by Example (CVPR 2023), `analogize paint`: a masked region repainted after an "
                         "exemplar image; `analogize train-pbe` trains the model",
     "the downloaded Paint-by-Example checkpoint (--base-model)"),
)


if __name__ == "__main__":
    sys.exit(main())
