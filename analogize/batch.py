"""Batch apply: one result per photo, written OUTPUT/STEM.png (or .tif, .jpg, .webp), for the command
line and the web app. Each result keeps its photo's bit depth, ICC profile and EXIF where the format
can hold them (images.save_image).

Both front ends hand a list of photos and a `make_result(path)` to `run_batch`, so they share one
failure policy: a photo that cannot be read, or that makes the method raise anything at all, is
recorded with its reason and the batch goes on (one bad file must not cost the other results);
only a full disk stops it, since every later write would fail the same way. Results are written
atomically, so a stopped batch leaves whole files only, and a rerun skips the photos already done.

Launched as several processes (`torchrun`, `accelerate launch`) each process takes its share of
the sorted photos; the main process writes the summary OUTPUT/analogize-apply.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .atomic import write_text_atomic
from .errors import AnalogizeError, DiskFullError
from .images import (DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, OUTPUT_FORMATS, check_quality, load_image, load_metadata,
                     save_image)

SUMMARY_NAME = "analogize-apply.json"


@dataclass
class BatchSummary:
    """What a batch did, as written to SUMMARY_NAME (plus `about`: the edit, the method, ...)."""

    about: dict[str, Any]
    images: int
    done: int = 0
    skipped: int = 0
    """Photos whose output existed already (kept, not redone)."""
    failed: list[dict[str, str]] = field(default_factory=list)
    """{"image": path, "reason": one line} per photo that failed."""
    processes: int = 1
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        return {**values.pop("about"), **values}


def output_path(output: Path, photo: Path, file_format: str = "png") -> Path:
    """Where `photo`'s result goes: OUTPUT/STEM plus the suffix of `file_format` (OUTPUT_FORMATS)."""
    return output / f"{photo.stem}{_suffix(file_format)}"


def _suffix(file_format: str) -> str:
    if file_format not in OUTPUT_FORMATS:
        raise AnalogizeError(f"format {file_format!r}: not one analogize writes; choose one of "
                             f"{', '.join(OUTPUT_FORMATS)}")
    return OUTPUT_FORMATS[file_format]


def run_batch(photos: list[Path], make_result: Callable[[Path], np.ndarray], output: Path, about: dict[str, Any], *,
              overwrite: bool = False, progress: bool = False,
              on_failure: Callable[[str], None] | None = None, file_format: str = "png",
              quality: int | None = None, on_done: Callable[[int, int], None] | None = None) -> BatchSummary:
    """`make_result(photo)` for every photo, saved to `output_path(output, photo, file_format)`
    with the photo's metadata (`quality` for jpg and webp); photos whose output exists are skipped
    unless `overwrite`. `on_failure(reason)` hears of each failure as it happens (the CLI prints
    it); `on_done(handled, photos)` of each photo this process has finished with, whatever the
    outcome (the web page's bar). Raises DiskFullError (after writing nothing partial) when the
    disk fills."""
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    from .distributed import process_state

    check_distinct_outputs(photos, file_format)
    check_quality(_suffix(file_format), quality)  # before any work, not once per photo
    started = time.perf_counter()
    state = process_state()
    done, skipped, failed = 0, 0, []
    with state.split_between_processes(photos) as share:
        for photo in tqdm(each_reported(share, on_done), total=len(share), desc="images", unit="image",
                          disable=not (progress and state.is_main_process)):
            target = output_path(output, photo, file_format)
            if target.exists() and not overwrite:  # outputs are written atomically: it is whole
                skipped += 1
                continue
            try:
                save_image(make_result(photo), target, load_metadata(photo), quality=quality)
            except DiskFullError:
                raise
            except AnalogizeError as error:
                reason = str(error)
            except Exception as error:  # noqa: BLE001 - one photo that breaks the method must not end the batch
                reason = f"{photo}: {type(error).__name__}: {error}"
            else:
                done += 1
                continue
            failed.append({"image": str(photo), "reason": reason})
            if on_failure is not None:
                on_failure(reason)
    shares = gather_object([{"done": done, "skipped": skipped, "failed": failed}])
    summary = BatchSummary(
        about, len(photos), done=sum(share["done"] for share in shares),
        skipped=sum(share["skipped"] for share in shares),
        failed=[failure for share in shares for failure in share["failed"]],
        processes=state.num_processes, seconds=round(time.perf_counter() - started, 3),
    )
    if state.is_main_process:
        write_text_atomic(output / SUMMARY_NAME, json.dumps(summary.as_dict(), indent=2))
    return summary


def each_reported(photos: list[Path], on_done: Callable[[int, int], None] | None) -> Iterator[Path]:
    """The photos one by one; once the loop is done with the n-th (next() is asked for the one
    after it, whichever way its turn ended), on_done(n, len(photos))."""
    for handled, photo in enumerate(photos, 1):
        yield photo
        if on_done is not None:
            on_done(handled, len(photos))


def expand_images(paths: list[Path]) -> list[Path]:
    """Files as given, folders as their image files (sorted); refuses names that are not there."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            files.append(path)
        else:
            raise AnalogizeError(f"{path}: no such file or folder; check the path")
    if not files:
        raise AnalogizeError(f"{', '.join(map(str, paths))}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return files


def check_distinct_outputs(photos: list[Path], file_format: str = "png") -> None:
    """Two photos with one stem would write the same output: refused before anything is done."""
    seen: dict[str, Path] = {}
    for photo in photos:
        if photo.stem in seen:
            raise AnalogizeError(f"{photo}: would write the same output {photo.stem}{_suffix(file_format)} as "
                                 f"{seen[photo.stem]}; rename one of them")
        seen[photo.stem] = photo


def apply_edit(edit, edit_path: Path, photos: list[Path], output: Path, *, strength: float = 1.0,
               strength_map: np.ndarray | None = None, mask: np.ndarray | None = None, seed: int = 0,
               scale: float = 1.0, max_pixels: int = DEFAULT_MAX_PIXELS, **options) -> BatchSummary:
    """A learned `edit` (loaded from `edit_path`) applied to every photo: `run_batch` with
    `Edit.apply`'s settings; `options` are run_batch's."""

    def edited(photo: Path) -> np.ndarray:
        return edit.apply(load_image(photo, max_pixels), strength=strength, strength_map=strength_map, mask=mask,
                          seed=seed, scale=scale, progress=options.get("progress", False))

    return run_batch(photos, edited, output, {"edit": str(edit_path), "method": edit.method}, **options)
