"""The `analogize` command. Its interface is a contract (docs/cli.md lists the commands; each
`analogize COMMAND --help` gives its flags and an example).

Every problem with the user's input ends the command with one line on stderr and exit status 2;
no traceback. Long work shows a progress bar unless --quiet is given or stderr is not a terminal.
The libraries' own warnings and notices (transformers, diffusers, torch, ...) are kept out of the
output unless -v/--verbose is given: stderr holds our lines only (`quiet_libraries`).

Each command is one module here, read top to bottom: HELP (its line in `analogize --help`),
EXAMPLE, `add_arguments(parser)` and `run(args)`. Building the parser imports every command
module, so at module level they import only the standard library and analogize's light tables
(constants, the method registry's METHOD_INFO); torch and everything else heavy is imported
inside `run`, so that `--help` and `analogize methods` answer at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from ..constants import __version__
from ..errors import AnalogizeError
from . import apply, bench, demo, edit, evaluate, export, learn, merge, methods, paint, serve, train_loc, train_pbe
from .common import EXIT_USER_ERROR

EXIT_INTERRUPTED = 130

COMMANDS = {
    "learn": learn, "apply": apply, "evaluate": evaluate, "bench": bench, "demo": demo, "edit": edit,
    "paint": paint, "train-pbe": train_pbe, "train-loc": train_loc, "export": export, "merge": merge,
    "serve": serve, "methods": methods,
}
"""Command name -> its module, in the order `analogize --help` lists them."""
LIBRARY_LOGGERS = ("transformers", "diffusers", "huggingface_hub", "accelerate", "peft", "torch", "gradio")
"""The loggers of the libraries analogize builds on; our own ("analogize") is not among them."""
LIBRARY_VERBOSITY = {"TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error", "HF_HUB_VERBOSITY": "error",
                     "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
"""What transformers, diffusers and huggingface_hub read when first imported: each sets its
logger's level from its variable then, overriding a level set before."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.progress = not args.quiet and sys.stderr.isatty()
    if not args.verbose:
        quiet_libraries()
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
            from ..distributed import leave_process_group

            leave_process_group()


def quiet_libraries() -> None:
    """Keep the libraries' warnings and notices off stderr (a notice that torchvision is missing, a
    deprecation, a keyword a loader ignores): they are not about the user's input, and they bury
    our one line. Importing nothing, so that light commands stay light: the environment variables
    cover a library imported later (a variable the user has set wins), the logger levels one
    imported already. Python warnings are ignored whoever they are attributed to (a library's
    stacklevel may point at our code; analogize's own notices are log records, never warnings)
    unless -W or PYTHONWARNINGS asks otherwise. Records of the "analogize" logger still show."""
    for variable, value in LIBRARY_VERBOSITY.items():
        os.environ.setdefault(variable, value)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if not sys.warnoptions:
        warnings.simplefilter("ignore")


def add_verbose_flag(parser: argparse.ArgumentParser, default: bool | str) -> None:
    """-v/--verbose, accepted before the command and after it: the top-level parser holds the
    default, each command's parser SUPPRESS, so that it does not overwrite a flag given first."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="also show the libraries' own warnings and notices (transformers, diffusers, torch, ...)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="analogize",
        description="Learn an image edit from before/after examples and apply it to new photos.",
        epilog="example:\n"
               "  analogize learn pairs/ -o warm.edit\n"
               "  analogize apply warm.edit holiday/ -o out/\n\n"
               "`analogize COMMAND --help` shows a command's flags and an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"analogize {__version__}")
    add_verbose_flag(parser, False)
    parser.set_defaults(quiet=True)  # commands without -q (export, merge, serve, methods) show no progress bar
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        subparser = commands.add_parser(name, help=command.HELP, description=command.HELP, epilog=command.EXAMPLE,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(subparser)
        add_verbose_flag(subparser, argparse.SUPPRESS)
        subparser.set_defaults(handler=command.run)
    return parser

