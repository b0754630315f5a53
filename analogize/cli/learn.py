"""`analogize learn`: learn an edit from a folder of before/after pairs into one edit file.

Settings come from the method's defaults, then its preset, then --config, then the flags, then
--set (any config field by name); a trainable method keeps checkpoints in OUTPUT.run/ so
`--resume` continues a stopped run.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..errors import AnalogizeError
from ..methods import DEFAULT_METHOD, METHOD_INFO
from ..settings import parse_setting
from .common import add_common_options, add_device_options, add_training_options, training_flags


def preset_table() -> str:
    """Each method's presets, its default marked, for the epilog where --preset is explained."""
    lines = ["presets (--preset) by method; with none given, the default, or else the method's plain settings:"]
    for info in METHOD_INFO.values():
        names = [f"{name} (default)" if name == info.default_preset else name for name in info.presets]
        lines.append(f"  {info.name:<10} {', '.join(names) or '-'}")
    return "\n".join(lines)


HELP = "learn an edit from a folder of pairs"
EXAMPLE = f"""\
example:
  analogize learn pairs/ -o warm.edit --method colormap   # a colour grade, in seconds
  analogize learn pairs/ -o look.edit --preset gpu-256     # fewshot on a GPU; --resume after a stop
  analogize learn pairs/ -o sd.edit --method pairedit --base-model SD_DIR --dtype bf16 \\
      --set cpu_offload=true --set gradient_checkpointing=true     # any config field by name

{preset_table()}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("pairs", type=Path, help="folder with before/ and after/ (or source/ and target/)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="edit file to write")
    parser.add_argument("--method", help=f"learning method (default: {DEFAULT_METHOD}; see `analogize methods`)")
    parser.add_argument("--preset", help="named settings of the method (listed below)")
    parser.add_argument("--steps", type=int, help="training steps (trainable methods)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in OUTPUT.run/")
    parser.add_argument("--resize-pairs", action="store_true",
                        help="resize after images whose size differs from their before image")
    parser.add_argument("--config", type=Path, help="YAML or JSON file of settings (pairedit also reads the "
                                                    "original's train_image.yaml); flags given here win")
    parser.add_argument("--base-model", help="pretrained diffusers pipeline (folder or cached hub id) for "
                                             "methods that build on one (pairedit)")
    parser.add_argument("--hypernetwork", type=Path, help="loc: folder trained by `analogize train-loc`")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                        help="any field of the method's config (docs/methods/METHOD.md lists them), "
                             "e.g. --set cpu_offload=true; values are JSON, bare words strings. Repeatable; wins "
                             "over --config and the flags")
    add_device_options(parser, "the diffusion backbone's weights and activations (pairedit, loc; fp16 needs a "
                               "GPU); other methods refuse it: their --mixed-precision sets how they train")
    add_training_options(parser.add_argument_group("training (trainable methods; defaults from the preset)"))


def run(args: argparse.Namespace) -> int:
    from ..distributed import process_state
    from ..editfile import save_edit
    from ..methods import get_method
    from ..pairs import PairSet

    method = get_method(args.method or DEFAULT_METHOD)
    from_file = method.settings_from_file(read_settings_file(args.config), str(args.config)) if args.config else {}
    flags = {**training_flags(args), "hypernetwork": str(args.hypernetwork) if args.hypernetwork else None,
             **device_flags(method, args)}
    sets = dict(parse_setting(text, "--set") for text in args.settings)
    config = method.make_config(args.preset, **{**from_file, **{k: v for k, v in flags.items() if v is not None},
                                                **sets})
    pairs = PairSet.from_folder(args.pairs, resize_mismatched=args.resize_pairs, max_pixels=args.max_pixels)
    run_dir = args.output.with_name(args.output.name + ".run")
    edit = method.learn(pairs, config, run_dir=run_dir, resume=args.resume, progress=args.progress)
    if process_state().is_main_process:  # every process ends with the same edit; one writes it
        save_edit(edit, args.output)
        seconds = edit.provenance.seconds if edit.provenance else 0.0
        print(f"learned {method.name} from {len(pairs)} pair(s) in {seconds:.1f} s -> {args.output}")
    return 0


def device_flags(method, args: argparse.Namespace) -> dict:
    """--device and --dtype as config overrides. --device becomes the whole process's device
    (devices.use_device: the training loop's too); a method on a diffusion backbone also gets it,
    and --dtype, as its config's `device` and `dtype`. --dtype for any other method is refused."""
    from ..devices import use_device

    fields = {field.name for field in dataclasses.fields(method.config_class)}
    if args.dtype and "dtype" not in fields:
        raise AnalogizeError(f"--dtype {args.dtype}: {method.name} has no diffusion backbone (pairedit and loc do); "
                             "leave --dtype out, or set its training precision with --mixed-precision")
    device = use_device(args.device)
    return {"device": str(device) if args.device != "auto" and "device" in fields else None, "dtype": args.dtype}


def read_settings_file(path: Path) -> dict:
    """--config's settings: a YAML (or JSON) mapping of names to values."""
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
