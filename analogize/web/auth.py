"""Who may use the web app: the passwords `serve` is started with, and where it may listen without one.

The server trains, applies and loads models for whoever reaches its port, so it listens on this
machine only unless given accounts (`--auth USER:PASSWORD`, or `--auth-file` with one
`user:password` a line, which keeps the passwords out of the process list). Gradio's own login
guards the page and its API; `--insecure` serves every network without a password, loudly.
Nothing here imports Gradio, so a refused start costs no import time.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from typing import Callable

from ..errors import AnalogizeError

LOOPBACK_NAMES = ("localhost",)


def read_credentials(given: list[str], auth_file: Path | None) -> dict[str, str]:
    """user -> password from `--auth` values and the lines of `auth_file` (blank lines and `#`
    comments skipped); a user given twice is refused, so no password silently wins."""
    entries = [(f"--auth {value.partition(':')[0]}:…", value) for value in given]
    if auth_file is not None:
        try:
            lines = auth_file.read_text().splitlines()
        except OSError as error:
            raise AnalogizeError(f"{auth_file}: cannot be read ({error.strerror}); give a file with one "
                                 "user:password a line") from None
        entries += [(f"{auth_file}, line {number}", line.strip()) for number, line in enumerate(lines, 1)
                    if line.strip() and not line.lstrip().startswith("#")]
    credentials: dict[str, str] = {}
    for where, entry in entries:
        user, colon, password = entry.partition(":")
        if not colon or not user or not password:
            raise AnalogizeError(f"{where}: write an account as user:password, both non-empty")
        if user in credentials:
            raise AnalogizeError(f"{where}: user {user!r} is given twice; keep one password per user")
        credentials[user] = password
    if auth_file is not None and not credentials:
        raise AnalogizeError(f"{auth_file}: holds no accounts; write one user:password a line")
    return credentials


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any network
        return False


def check_exposure(host: str, credentials: dict[str, str], insecure: bool) -> str | None:
    """Refuse to serve other machines without accounts unless `insecure`; returns the warning to
    print when serving them open anyway."""
    if credentials or is_loopback(host):
        return None
    if not insecure:
        raise AnalogizeError(f"--host {host} lets other machines train, apply and load models with no password; give "
                             "--auth USER:PASSWORD or --auth-file FILE (or --insecure to serve it open anyway)")
    return (f"serving {host} with NO password (--insecure): anyone who can reach this port can use the server "
            "and fill its disk")


def password_check(credentials: dict[str, str]) -> Callable[[str, str], bool]:
    """Gradio's `auth` callable. Compared in constant time, so response times do not reveal how
    much of a guessed password was right."""

    def check(user: str, password: str) -> bool:
        expected = credentials.get(user)
        matches = hmac.compare_digest((expected or "").encode(), password.encode())
        return expected is not None and matches

    return check
