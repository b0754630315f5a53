"""The Python entry points behind the CLI, for scripts and notebooks.

    import analogize
    edit = analogize.learn(analogize.PairSet.from_folder("pairs"), method="colormap")
    edit.apply(Image.open("photo.jpg")).save("photo-warm.png")   # PIL in, PIL out
    edit.save("warm.edit")
    analogize.apply_folder(edit, "holiday/", "out/", strength=0.8)

Both show progress bars (tqdm.auto: a widget in Jupyter) unless given `progress=False`; the CLI
passes its own choice (-q, or stderr not a terminal). `import analogize` imports this module, so
it imports nothing heavy itself: a method's module (and torch) loads when the method is first used.
docs/python.md has a worked example.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .methods import DEFAULT_METHOD, REGISTRY, get_method

if TYPE_CHECKING:
    from .batch import BatchSummary
    from .methods.base import Edit, Method
    from .pairs import PairSet


def methods() -> dict[str, Method]:
    """Registered methods by name."""
    return dict(REGISTRY)


def learn(
    pairs: PairSet,
    method: str = DEFAULT_METHOD,
    preset: str | None = None,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    **settings: Any,
) -> Edit:
    """Learn an edit from `pairs` with a registered method, a preset and any config overrides
    (`steps=200`, `cpu_offload=True`: the fields of the method's config, docs/methods/)."""
    chosen = get_method(method)
    config = chosen.make_config(preset, **settings)
    return chosen.learn(pairs, config, run_dir=run_dir, resume=resume, progress=progress)


def apply_folder(
    edit: Edit | str | os.PathLike,
    inputs: str | os.PathLike | list[str | os.PathLike],
    output: str | os.PathLike,
    *,
    progress: bool = True,
    **settings: Any,
) -> BatchSummary:
    """Apply `edit` (an Edit, or an edit file's path) to photos and folders of photos, writing one
    result per photo into the folder `output`, exactly as `analogize apply` does (batch.py: finished
    photos are skipped unless `overwrite=True`, a failing photo is recorded and the rest go on,
    OUTPUT/analogize-apply.json sums it up). `settings` are `Edit.apply`'s (strength, strength_map,
    mask, seed, scale) and the batch's (overwrite, max_pixels, on_failure and the output format's).
    Returns the summary: `.done`, `.skipped`, `.failed`."""
    from .batch import apply_edit, expand_images
    from .devices import resolve_device
    from .editfile import load_edit

    if isinstance(edit, (str, os.PathLike)):
        edit_name, edit = str(edit), load_edit(edit).to(resolve_device("auto"))
    else:
        edit_name = f"(in memory: {edit.method})"
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
    return apply_edit(edit, edit_name, expand_images([Path(path) for path in paths]), Path(output),
                      progress=progress, **settings)
