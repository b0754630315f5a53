"""The benchmark's photo corpus: real photographs that ship inside installed packages.

Two sources, both offline:

- photos inside pip packages: scikit-image's six, always there (a core dependency) and enough
  for `analogize demo` (three train, three test); scikit-learn's two and matplotlib's one when
  those are installed (the `bench` extra: BENCHMARKS.md was measured with them). Neither is a
  core dependency, since reading three JPEGs is all analogize would use them for;
- the sample photos of Debian's `opencv-doc` package, which `bash benchmarks/fetch_photos.sh`
  copies into the photo folder (`~/.cache/analogize/photos`, or `$ANALOGIZE_PHOTOS`). Every image
  in that folder joins the corpus, so a user can add their own.

Photos are split into train and test once, by scene: a photo's group names its scene, and all
photos of a scene land on the same side. The side is decided by a hash of the group name alone,
so adding or removing photos never moves another photo across the split.

`crops` turns a few dozen photos into as many training or test images as a benchmark needs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import AnalogizeError
from ..images import load_image
from ..pairs import image_files_by_stem

PHOTOS_ENV = "ANALOGIZE_PHOTOS"
FETCH_COMMAND = "bash benchmarks/fetch_photos.sh"

# name: (installed package, file inside it). Only files inside the wheels; other scikit-image
# samples are downloaded on first use, which these machines cannot do. A photo whose package is
# not installed is left out.
PACKAGE_PHOTOS = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    # The right view of this stereo pair shows the same scene, so it would add no new content.
    "motorcycle": ("skimage", "data/motorcycle_left.png"),
    # The `bench` extra's packages.
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}

# Photos that show the same scene from another viewpoint; any other photo is its own group.
SAME_SCENE = {"aero1": "aero", "aero3": "aero"}

# A crop spans from 1 / MAX_ZOOM_OUT of a photo's short side to all of it: objects, not just texture.
MAX_ZOOM_OUT = 2.5


@dataclass(frozen=True)
class Photo:
    name: str
    group: str
    """The scene shown; photos of one scene always land on the same side of the split."""
    path: Path

    def load(self) -> np.ndarray:
        """The photo as a float32 (H, W, 3) array in [0, 1]."""
        return load_image(self.path)


def photos_dir() -> Path:
    """Where `benchmarks/fetch_photos.sh` puts photos: `$ANALOGIZE_PHOTOS` or the user cache."""
    return Path(os.environ.get(PHOTOS_ENV) or Path.home() / ".cache" / "analogize" / "photos")


def photos() -> list[Photo]:
    """Every photo available on this machine, sorted by name."""
    found: dict[str, Photo] = {}
    for name, (package, relative_path) in PACKAGE_PHOTOS.items():
        path = _package_file(package, relative_path)
        if path is not None:
            found[name] = Photo(name, SAME_SCENE.get(name, name), path)
    folder = photos_dir()
    if folder.is_dir():
        for name, path in image_files_by_stem(folder).items():
            # A package photo copied into the folder is still one photo.
            found.setdefault(name, Photo(name, SAME_SCENE.get(name, name), path))
    return [found[name] for name in sorted(found)]


def _package_file(package: str, relative_path: str) -> Path | None:
    # find_spec locates a package without importing it; importing scikit-learn is slow.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / relative_path
    return path if path.is_file() else None


def require_photos(minimum: int) -> list[Photo]:
    """All photos; a one-line `AnalogizeError` naming the fetch command if fewer than `minimum`."""
    available = photos()
    if len(available) < minimum:
        raise AnalogizeError(
            f"{photos_dir()}: {len(available)} benchmark photos available but {minimum} needed; "
            f"run `{FETCH_COMMAND}` to fetch the OpenCV sample photos"
        )
    return available


def _scene_hash(group: str, salt: str = "") -> float:
    """A stable number in [0, 1) for a scene: a hash of its name (and a salt), not of the corpus."""
    digest = hashlib.sha256((salt + group).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _split_by_scene(photo_list: Sequence[Photo], fraction: float, salt: str) -> tuple[list[Photo], list[Photo]]:
    if not 0.0 < fraction < 1.0:
        raise AnalogizeError(f"the held-out fraction is {fraction}; give a value between 0 and 1")
    held_out = [_scene_hash(photo.group, salt) < fraction for photo in photo_list]
    kept = [photo for photo, out in zip(photo_list, held_out) if not out]
    return kept, [photo for photo, out in zip(photo_list, held_out) if out]


def split(
    photo_list: Sequence[Photo], test_fraction: float = 0.3
) -> tuple[list[Photo], list[Photo]]:
    """Split into (train, test) by scene; roughly `test_fraction` of the scenes go to test."""
    train, test = _split_by_scene(photo_list, test_fraction, salt="")
    if not train or not test:
        raise AnalogizeError(
            f"{len(photo_list)} photos give {len(train)} for training and {len(test)} for testing; "
            f"run `{FETCH_COMMAND}` to fetch more photos"
        )
    return train, test


VALIDATION_SALT = "validation:"


def validation_split(
    train_photos: Sequence[Photo], validation_fraction: float = 0.3
) -> tuple[list[Photo], list[Photo]]:
    """Split the training side again by scene into (fit, validation), for choosing settings
    without looking at the test photos: a differently salted hash, so it is independent of `split`."""
    fit, validation = _split_by_scene(train_photos, validation_fraction, salt=VALIDATION_SALT)
    if not fit or not validation:
        raise AnalogizeError(
            f"{len(train_photos)} training photos give {len(fit)} to fit and {len(validation)} to validate; "
            f"run `{FETCH_COMMAND}` to fetch more photos"
        )
    return fit, validation


def crops(
    photo_list: Sequence[Photo], count: int, size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """`count` random `size`×`size` crops, each from a photo drawn with replacement.

    Each photo is first scaled so its short side is a random length between `size` and
    `MAX_ZOOM_OUT`×`size` (a photo is only enlarged when it is smaller than `size`), so
    crops range from whole-scene views to close-ups. Same `rng` state, same crops.
    """
    if not photo_list:
        raise AnalogizeError(f"no photos to crop; run `{FETCH_COMMAND}` or pass some photos")
    sources = rng.integers(len(photo_list), size=count)
    result = np.empty((count, size, size, 3), dtype=np.float32)
    # Each photo is loaded once and dropped before the next, so memory holds one photo at a time.
    for source in np.unique(sources):
        image = photo_list[int(source)].load()
        for position in np.flatnonzero(sources == source):
            result[position] = _random_crop(image, size, rng)
    return list(result)


def _random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    short_side = min(height, width)
    target = max(size, min(short_side, rng.uniform(size, MAX_ZOOM_OUT * size)))
    scale = target / short_side
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    # INTER_AREA averages the pixels a downscaled one covers (no aliasing); cubic when enlarging.
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    scaled = cv2.resize(image, (new_width, new_height), interpolation=interpolation)
    top = int(rng.integers(new_height - size + 1))
    left = int(rng.integers(new_width - size + 1))
    return np.clip(scaled[top : top + size, left : left + size], 0.0, 1.0)
