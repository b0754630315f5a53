"""`analogize serve`: the web app (docs/web.md), teaching and applying edits in the browser.

It listens on this machine only unless told otherwise, and refuses to serve other machines with
no password unless --insecure says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import AnalogizeError

HELP = "the web app: teach and apply edits in the browser"
EXAMPLE = """\
example:
  analogize serve                                   # then open http://127.0.0.1:7860
  analogize serve --host 0.0.0.0 --auth-file accounts.txt --models-dir ~/models
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: this machine only; 0.0.0.0 = every network)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default %(default)s)")
    parser.add_argument("--workdir", type=Path, default=Path("analogize-serve"),
                        help="folder for uploads, jobs and results (default %(default)s)")
    parser.add_argument("--max-upload-mb", type=int, default=50, help="largest file one upload may be")
    parser.add_argument("--models-dir", type=Path,
                        help="folder of pretrained model folders the pages may use, by name (default: none)")
    parser.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                        help="an account that may sign in (repeatable); needed to serve other machines")
    parser.add_argument("--auth-file", type=Path,
                        help="file of accounts, one user:password a line (keeps passwords out of the process list)")
    parser.add_argument("--insecure", action="store_true",
                        help="serve a non-loopback --host with no password (anyone who reaches the port can use it)")


def run(args: argparse.Namespace) -> int:
    from ..web.auth import check_exposure, read_credentials

    credentials = read_credentials(args.auth, args.auth_file)
    warning = check_exposure(args.host, credentials, args.insecure)
    try:
        from ..web.app import serve
    except ImportError as error:
        raise AnalogizeError(f"the web app needs {error.name}; pip install 'analogize[web]'") from None
    if warning:
        print(f"analogize: WARNING: {warning}", file=sys.stderr)
    if args.models_dir is not None and not args.models_dir.is_dir():
        raise AnalogizeError(f"--models-dir {args.models_dir}: no such folder; give the folder holding the model folders")
    serve(args.workdir, args.host, args.port, args.max_upload_mb, credentials=credentials, models_dir=args.models_dir)
    return 0
