"""Reading and writing photos.

Inside analogize an image is a float32 numpy array of shape (H, W, 3) with values in [0, 1].
`load_image` turns whatever a user hands us into that form:

- EXIF orientation is applied, so a phone photo is the right way up;
- greyscale, palette, CMYK and 16-bit images become RGB (16-bit keeps its precision until the
  final float conversion);
- transparent pixels are composited on white, because edits are learned on what a person sees
  and a transparent region most often shows as white in viewers and on paper;
- files that are not images, truncated files and "decompression bombs" (tiny files that declare
  enormous sizes) are refused with a one-line `AnalogizeError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .constants import DEFAULT_MAX_PIXELS
from .errors import AnalogizeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load `path` as a float32 RGB array of shape (H, W, 3) in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise AnalogizeError(f"{path}: no such file; check the path")
    try:
        with warnings.catch_warnings():
            # Pillow warns between its own pixel limit and twice it; the check below replaces that.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise AnalogizeError(
                        f"{path}: declares {width}x{height} pixels, over the limit of {max_pixels:,}; "
                        "downscale the image or raise the limit (--max-pixels)"
                    )
                deep_colour = _is_16bit_colour(image)  # known only before loading
                orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
                # Loading here (even when OpenCV reads the pixels) refuses truncated files alike.
                image = ImageOps.exif_transpose(image)
                image.load()
                if deep_colour:
                    return _read_16bit_colour(path, orientation)
                return _to_rgb_array(image)
    except AnalogizeError:
        raise
    except Image.DecompressionBombError:
        # Past twice its own limit Pillow refuses a file before we can read its size.
        raise AnalogizeError(
            f"{path}: declares more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, over the limit of "
            f"{max_pixels:,}; downscale the image"
        ) from None
    except UnidentifiedImageError:
        raise AnalogizeError(
            f"{path}: not an image Pillow can read; re-export it as PNG or JPEG"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise AnalogizeError(
            f"{path}: truncated or corrupt image ({_first_line(error)}); re-export or re-download it"
        ) from None


def load_alpha(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """The transparency of `path` as (H, W) float32 in [0, 1] (1 = opaque), upright like
    `load_image`; None when the file has no transparency."""
    load_image(path, max_pixels)  # the same checks and one-line errors as every image
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode not in ("RGBA", "LA", "PA", "RGBa", "La"):
            return None
        return np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale (PNG and TIFF open as I;16 or I): scale by the 16-bit range.
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=2)
    if image.mode == "F":
        grey = np.asarray(image, dtype=np.float32)
        scale = 1.0 if grey.max(initial=0.0) <= 1.0 else 255.0
        return np.repeat(np.clip(grey / scale, 0.0, 1.0)[..., None], 3, axis=2)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _is_16bit_colour(image: Image.Image) -> bool:
    """Pillow decodes 16-bit colour and grey+alpha PNG and TIFF files to 8 bits per channel;
    only the raw mode of the undecoded data tells them apart."""
    if image.format not in ("PNG", "TIFF") or image.mode not in ("RGB", "RGBA", "LA") or not image.tile:
        return False
    args = image.tile[0].args
    raw_mode = args[0] if isinstance(args, tuple) else args
    return isinstance(raw_mode, str) and ";16" in raw_mode


# EXIF orientation -> how to make the array upright (the same moves as ImageOps.exif_transpose).
_UPRIGHT = {
    2: lambda array: array[:, ::-1],
    3: lambda array: array[::-1, ::-1],
    4: lambda array: array[::-1],
    5: lambda array: array.transpose(1, 0, 2),
    6: lambda array: np.rot90(array, -1),
    7: lambda array: array[::-1, ::-1].transpose(1, 0, 2),
    8: lambda array: np.rot90(array, 1),
}


def _read_16bit_colour(path: Path, orientation: int) -> np.ndarray:
    """OpenCV keeps all 16 bits; the same white compositing as `_to_rgb_array` follows."""
    # imdecode rather than imread: OpenCV cannot open non-ASCII paths on Windows.
    data = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)  # (H, W, 3|4) BGR(A)
    if data is None or data.ndim != 3:
        raise AnalogizeError(f"{path}: a 16-bit image OpenCV cannot decode; re-export it as 8-bit PNG")
    pixels = data.astype(np.float32) / 65535.0
    rgb = pixels[..., 2::-1]
    if pixels.shape[2] == 4:
        alpha = pixels[..., 3:]
        rgb = rgb * alpha + (1.0 - alpha)
    upright = _UPRIGHT.get(orientation, lambda array: array)(rgb)
    return np.ascontiguousarray(np.clip(upright, 0.0, 1.0), dtype=np.float32)


def save_image(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an (H, W, 3) array in [0, 1] atomically; the format follows the file suffix."""
    path = Path(path)
    image = to_pil(array)
    file_format = Image.registered_extensions().get(path.suffix.lower())
    if file_format not in Image.SAVE:  # Pillow reads some formats it cannot write (.psd, .pcd)
        raise AnalogizeError(
            f"{path}: cannot write {path.suffix or 'files without an extension'}; use .png or .jpg"
        )
    with atomic_path(path) as tmp:
        image.save(tmp, format=file_format)
    return path


def to_pil(array: np.ndarray) -> Image.Image:
    return Image.fromarray(to_uint8(array), mode="RGB")


def to_uint8(array: np.ndarray) -> np.ndarray:
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, C) float array to `size` = (width, height) with a Lanczos filter."""
    width, height = size
    if array.shape[1] == width and array.shape[0] == height:
        return array
    channels = [
        np.asarray(Image.fromarray(array[..., c].astype(np.float32), mode="F").resize(
            (width, height), Image.Resampling.LANCZOS))
        for c in range(array.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0).astype(np.float32)


def fit_within(array: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most `max_side`, keeping the aspect ratio."""
    height, width = array.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return array
    return resize(array, (max(1, round(width * scale)), max(1, round(height * scale))))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
