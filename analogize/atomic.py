"""Atomic file writes: a crash, Ctrl-C, kill -9 or a full disk never leaves a half-written output.

Each output is written under a hidden name beside its final path and renamed into place only
when whole. Temporary files and folders are created with the mode a plain `open()` / `mkdir()`
would give (0666 / 0777 less the umask, applied by the kernel), so the process umask is never
read or changed: probing it with `os.umask` sets it to 0 for a moment, and a file another thread
creates in that moment (the web server runs handlers in threads) would be world-writable.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterator

from .errors import DiskFullError

DISK_FULL_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# Less free space than this after a library's write failed: the disk filled (`disk_full_errno`).
NEARLY_FULL_BYTES = 1 << 20


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    final = Path(path)
    with disk_full_as_error(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_hidden(final, lambda candidate: os.close(
            os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_folder_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """`write(folder)` fills a hidden staging folder beside `path`, which is then renamed to `path`
    (which must not exist): a crash leaves either the whole folder or none."""
    final = Path(path)
    with disk_full_as_error(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = _create_hidden(final, lambda candidate: os.mkdir(candidate, 0o777), suffix=".staging")
        try:
            write(staging)
            os.rename(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


@contextlib.contextmanager
def disk_full_as_error(path: Path, *, written_by_library: bool = False) -> Iterator[None]:
    """A full disk (or quota, or file-size limit) while writing `path` becomes one line naming it.

    `written_by_library=True` is for files a library writes itself, which may wrap the OSError in
    its own exception: see `disk_full_errno`."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as error:
        code = disk_full_errno(error, path if written_by_library else None)
        if code is None:
            raise
        raise DiskFullError(f"{path}: could not be written, {os.strerror(code).lower()}; free some space "
                             "there or write somewhere else (nothing half-written was left)") from None


def disk_full_errno(error: Exception, written: Path | None = None) -> int | None:
    """The errno (ENOSPC, EDQUOT, EFBIG) if `error` says a write failed for lack of space, else None.

    An OSError carries its errno. Libraries that write files themselves wrap it; given the path
    `written`, their errors count too: safetensors raises a SafetensorError quoting the system's
    message ("No space left on device (os error 28)"), torch.save a RuntimeError that may not
    ("unexpected pos 576 vs 534"), but it leaves its partial file filling the disk, so a filesystem
    with (almost) no space left at that moment counts as full."""
    if isinstance(error, OSError):
        return error.errno if error.errno in DISK_FULL_ERRORS else None
    if written is None:
        return None
    for code in DISK_FULL_ERRORS:
        if os.strerror(code) in str(error):
            return code
    folder = next(parent for parent in (written, *written.parents) if parent.exists())
    return errno.ENOSPC if shutil.disk_usage(folder).free < NEARLY_FULL_BYTES else None


def _create_hidden(final: Path, create: Callable[[Path], object], suffix: str = ".tmp") -> Path:
    """A new hidden `.NAME.RANDOM.SUFFIX` beside `final`, made by `create(path)`, which must fail
    with FileExistsError when the path exists (O_EXCL, mkdir)."""
    while True:
        candidate = final.with_name(f".{final.name}.{secrets.token_hex(4)}{suffix}")
        try:
            create(candidate)
            return candidate
        except FileExistsError:
            continue
