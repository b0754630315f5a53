"""analogize: learn an image edit from before/after examples and apply it to new photos.

    from analogize import PairSet, learn, load_edit, load_image
    edit = learn(PairSet.from_folder("pairs"), method="colormap")
    result = edit.apply(load_image("photo.jpg"), strength=0.8)
"""

__version__ = "0.1.0"

from .api import learn, methods  # noqa: E402
from .editfile import load_edit, save_edit  # noqa: E402
from .images import load_image, save_image  # noqa: E402
from .pairs import PairSet  # noqa: E402

__all__ = ["PairSet", "learn", "load_edit", "load_image", "methods", "save_edit", "save_image", "__version__"]
