"""analogize: learn an image edit from before/after examples and apply it to new photos.

    from analogize import PairSet, apply_folder, learn, load_edit, load_image
    edit = learn(PairSet.from_folder("pairs"), method="colormap")
    result = edit.apply(load_image("photo.jpg"), strength=0.8)   # or a PIL image, or a uint8 array
    edit.save("warm.edit")
    apply_folder(edit, "holiday/", "out/")

docs/python.md walks through it.

Importing the package stays light (the CLI's --help imports it): the names below that need numpy,
OpenCV or torch import their module on first use.
"""

import importlib

from .constants import __version__  # noqa: E402

# Imported now, not lazily: api is light, and importing it loads the subpackage analogize.methods,
# whose attribute on this package the function `methods` must then replace.
from .api import apply_folder, learn, methods  # noqa: E402

_LAZY_MODULES = {"PairSet": "pairs", "load_edit": "editfile", "save_edit": "editfile",
                 "load_image": "images", "save_image": "images"}


def __getattr__(name: str):
    if name not in _LAZY_MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(importlib.import_module(f".{_LAZY_MODULES[name]}", __name__), name)
    return value


__all__ = ["PairSet", "apply_folder", "learn", "load_edit", "load_image", "methods", "save_edit", "save_image", "__version__"]
