"""The `analogize` command. Its interface is a contract (docs/cli.md lists the commands; each
`analogize COMMAND --help` gives its flags and an example).

Every problem with the user's input ends the command with one line on stderr and exit status 2;
no traceback. Long work shows a progress bar unless --quiet is given or stderr is not a terminal.

Each command is one module here, read top to bottom: HELP (its line in `analogize --help`),
EXAMPLE, `add_arguments(parser)` and `run(args)`. Building the parser imports every command
module, so at module level they import only the standard library and analogize's light tables
(constants, the method registry's METHOD_INFO); torch and everything else heavy is imported
inside `run`, so that `--help` and `analogize methods` answer at once.
"""

from __future__ import annotations

import argparse
import sys

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
            from ..distributed import leave_process_group

            leave_process_group()


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
    parser.set_defaults(quiet=True)  # commands without -q (export, merge, serve, methods) show no progress bar
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        subparser = commands.add_parser(name, help=command.HELP, description=command.HELP, epilog=command.EXAMPLE,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(subparser)
        subparser.set_defaults(handler=command.run)
    return parser

