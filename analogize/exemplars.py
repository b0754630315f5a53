"""The exemplar methods on files, for `analogize edit` / `analogize paint` and the web app alike.

- `pixels_step`: one PIXELS edit of a photo file towards exemplar files, written with its history:
  OUTPUT.history.json lists every step that led to OUTPUT, so an output edited again continues
  its source's history (progressive editing), in one format wherever the edit was made.
- `mask_for_photo`: where Paint by Example repaints a photo: a box, NAME_mask.* beside the photo, or
  its transparent pixels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .atomic import write_text_atomic
from .errors import AnalogizeError
from .images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, load_alpha, load_image, save_image

HISTORY_SUFFIX = ".history.json"
MASK_SUFFIX = "_mask"


@dataclass
class ExemplarFile:
    """An exemplar image file, its edit map file (white keeps the source, black takes the exemplar)
    and where to paste it on the source, if it is not aligned with it already."""

    image: Path
    edit_map: Path | None = None
    placement: tuple[float, int, int] | None = None
    """(scale, left, top): paste the image scaled by `scale` with its top-left corner there; the map
    then defaults to the pasted area."""

    def record(self) -> dict:
        entry = {"image": str(self.image), "map": str(self.edit_map) if self.edit_map else None}
        if self.placement:
            scale, left, top = self.placement
            entry["placement"] = {"scale": scale, "left": left, "top": top}
        return entry


def history_path(image: Path) -> Path:
    return image.with_name(image.name + HISTORY_SUFFIX)


def read_history(image: Path) -> list[dict]:
    """The steps that led to `image` (empty for a photo that no PIXELS edit wrote)."""
    path = history_path(image)
    return json.loads(path.read_text()) if path.is_file() else []


def pixels_step(load_backbone: Callable[[], Any], base_model: str, source: Path, exemplars: list[ExemplarFile],
                output: Path, *, steps: int, strength: float = 1.0, seed: int = 0, prompt: str = "",
                guidance: float = 1.0, prior: str = "", history: list[dict] | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS,
                progress: bool | Callable[[int, int], None] = False) -> list[dict]:
    """Edit `source` towards `exemplars` with PIXELS on the backbone `load_backbone()` gives (from
    `base_model`; called once the files have been read, so a bad file costs no model load), write
    `output` and its history: `history` (default: the source's own, read beside it) plus this step.
    Returns that history. `progress` as in `pixels_edit`: a bar, or (done, total) per step."""
    from .methods.pixels import Exemplar, pixels_edit, place

    photo = load_image(source, max_pixels)
    loaded = []
    for exemplar in exemplars:
        image = load_image(exemplar.image, max_pixels)
        edit_map = load_image(exemplar.edit_map, max_pixels) if exemplar.edit_map else None
        if exemplar.placement:
            scale, left, top = exemplar.placement
            image, placed_map = place(image, photo, scale=scale, left=left, top=top)
            edit_map = placed_map if edit_map is None else edit_map
        loaded.append(Exemplar(image, edit_map))
    result = pixels_edit(load_backbone(), photo, loaded, steps=steps, strength=strength, seed=seed, prompt=prompt,
                         guidance=guidance, progress=progress)
    save_image(result, output)
    step = {"source": str(source), "exemplars": [exemplar.record() for exemplar in exemplars],
            "base_model": base_model, "prior": prior, "steps": steps, "strength": strength, "seed": seed,
            "prompt": prompt, "guidance": guidance, "result": str(output)}
    history = [*(read_history(source) if history is None else history), step]
    write_text_atomic(history_path(output), json.dumps(history, indent=2))
    return history


def mask_for_photo(photo: Path, size: tuple[int, int], box: str | None = None,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A photo's repaint mask (white = repaint) of `size` (H, W): the `box` "x0,y0,x1,y1", else
    NAME_mask.* beside the photo, else the photo's transparent pixels."""
    if box:
        try:
            x0, y0, x1, y1 = (round(float(value)) for value in box.split(","))
        except ValueError:
            raise AnalogizeError(f"--box {box!r}: write it as x0,y0,x1,y1 in pixels, e.g. 40,30,120,100") from None
        height, width = size
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise AnalogizeError(f"--box {box}: must lie inside {photo} ({width}×{height}) with x0 < x1 and y0 < y1")
        mask = np.zeros(size, dtype=np.float32)
        mask[y0:y1, x0:x1] = 1.0
        return mask
    beside = sorted(path for path in photo.parent.glob(f"{photo.stem}{MASK_SUFFIX}.*")
                    if path.suffix.lower() in IMAGE_SUFFIXES)
    if beside:
        return load_image(beside[0], max_pixels)
    alpha = load_alpha(photo, max_pixels)
    if alpha is not None and (alpha < 0.5).any():
        return (alpha < 0.5).astype(np.float32)
    raise AnalogizeError(f"{photo}: no mask; give --mask or --box, put {photo.stem}{MASK_SUFFIX}.png beside it, "
                         "or make the region to repaint transparent")
