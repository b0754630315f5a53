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

`load_metadata` reads what a photo carries besides its pixels (bit depth, ICC profile, EXIF) and
`save_image` takes it, so an edited photo keeps them: a photographer's 16-bit scan stays 16-bit,
a wide-gamut photo keeps the profile its numbers mean, and the camera's EXIF stays on the result.
The edit works on the numbers as they are (no colour conversion), so the input's profile is the
right one for the output. docs/cli.md has the table of what each output format keeps.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .constants import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, OUTPUT_FORMATS  # noqa: F401 - re-exported
from .errors import AnalogizeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")
LOSSY_FORMATS = ("JPEG", "WEBP")
"""Pillow's names of the formats that take a quality."""

# Pillow modes deeper than 8 bits that load_image reads at full precision (16-bit colour is
# told apart by `_is_16bit_colour`, since Pillow opens it as 8-bit RGB).
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
# Tags that describe a TIFF's pixel layout, not the photo: Pillow reports them among a TIFF's
# EXIF, and carried to another file they would describe the wrong pixels.
_TIFF_LAYOUT_TAGS = frozenset({254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 280, 281, 284, 317,
                               320, 322, 323, 324, 325, 338, 339, 513, 514, 529, 530, 531, 532, 34675})
_ORIENTATION = 0x0112
# The EXIF tags of the main IFD that a 16-bit TIFF carries (tifffile writes plain tags only, no
# Exif or GPS sub-IFD): description, make, model, software, date, artist, copyright.
_TIFF_TEXT_TAGS = (270, 271, 272, 305, 306, 315, 33432)


@dataclass(frozen=True)
class PhotoMetadata:
    """What a photo carries besides its pixels, for `save_image` to write on its result."""

    bit_depth: int = 8
    """16 when the photo has more than 8 bits per channel (16-bit PNG and TIFF), else 8."""
    icc_profile: bytes | None = None
    """The embedded colour profile, as stored."""
    exif: bytes | None = None
    """The EXIF block (with its "Exif\\0\\0" header), orientation set to 1: the pixels that
    `load_image` returns are already upright."""


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
                return to_rgb_array(image)
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


def load_metadata(path: str | os.PathLike) -> PhotoMetadata:
    """The bit depth, ICC profile and EXIF of `path` (pixels are not decoded); a file
    `load_image` reads gives no error here."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            deep = _is_16bit_colour(image) or image.mode in _DEEP_MODES
            return PhotoMetadata(16 if deep else 8, image.info.get("icc_profile") or None, _upright_exif(image))
    except (OSError, SyntaxError, ValueError) as error:
        raise AnalogizeError(f"{path}: cannot read its metadata ({_first_line(error)}); "
                             "re-export or re-download it") from None


def _upright_exif(image: Image.Image) -> bytes | None:
    """The EXIF of an open image without TIFF layout tags, orientation 1; None when it has none.
    Serialised while the file is open: a TIFF's Exif sub-IFD is read from the file on demand."""
    exif = image.getexif()
    for tag in _TIFF_LAYOUT_TAGS & set(exif):
        del exif[tag]
    if not exif:
        return None
    if _ORIENTATION in exif:
        exif[_ORIENTATION] = 1
    return exif.tobytes()


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


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """An open PIL image of any mode -> float32 (H, W, 3) in [0, 1], as `load_image` returns a
    file (transparency composited on white, grey repeated into RGB)."""
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
    """OpenCV keeps all 16 bits; the same white compositing as `to_rgb_array` follows."""
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


def save_image(array: np.ndarray, path: str | os.PathLike, metadata: PhotoMetadata | None = None, *,
               quality: int | None = None) -> Path:
    """Write an (H, W, 3) array in [0, 1] atomically; the format follows the file suffix.

    `metadata` (from `load_metadata` of the input) is written where the format can hold it:
    16 bits per channel in PNG and TIFF, the ICC profile and EXIF everywhere (a 16-bit TIFF keeps
    only EXIF's main text tags). `quality` (1-100, default DEFAULT_QUALITY) is for JPEG and WebP."""
    path = Path(path)
    metadata = metadata or PhotoMetadata()
    file_format = Image.registered_extensions().get(path.suffix.lower())
    if file_format not in Image.SAVE:  # Pillow reads some formats it cannot write (.psd, .pcd)
        raise AnalogizeError(
            f"{path}: cannot write {path.suffix or 'files without an extension'}; use .png or .jpg"
        )
    check_quality(path.suffix, quality)
    with atomic_path(path) as tmp:
        if metadata.bit_depth == 16 and file_format == "PNG":
            tmp.write_bytes(_encode_16bit_png(array, metadata))
        elif metadata.bit_depth == 16 and file_format == "TIFF":
            _write_16bit_tiff(array, tmp, metadata)
        else:
            options = {key: value for key, value in
                       (("icc_profile", metadata.icc_profile), ("exif", metadata.exif)) if value}
            if file_format in LOSSY_FORMATS:
                options["quality"] = DEFAULT_QUALITY if quality is None else quality
            to_pil(array).save(tmp, format=file_format, **options)
    return path


def check_quality(suffix: str, quality: int | None) -> None:
    """A one-line error unless `quality` is None, or 1-100 for a lossy format (by file suffix)."""
    if quality is None:
        return
    if Image.registered_extensions().get(suffix.lower()) not in LOSSY_FORMATS:
        raise AnalogizeError(f"quality {quality}: only JPEG and WebP have a quality ({suffix} is written "
                             "losslessly); leave it out, or write jpg or webp")
    if not 1 <= quality <= 100:
        raise AnalogizeError(f"quality {quality}: out of range; give 1 (smallest file) to 100 (best)")


def to_uint16(array: np.ndarray) -> np.ndarray:
    return (np.clip(array, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)


def _encode_16bit_png(array: np.ndarray, metadata: PhotoMetadata) -> bytes:
    """Pillow cannot write 16-bit colour PNG, OpenCV cannot write ICC or EXIF: OpenCV encodes,
    then the iCCP and eXIf chunks go in right after IHDR, where the PNG spec wants them (before
    IDAT). OpenCV writes no sRGB or gAMA chunk that an iCCP chunk would contradict."""
    # Compression level 6, as Pillow's 8-bit PNGs (OpenCV's default, 1, makes much larger files).
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(to_uint16(array)[..., ::-1]),
                               [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise AnalogizeError("OpenCV could not encode a 16-bit PNG; write --format tiff instead")
    data = encoded.tobytes()
    chunks = b""
    if metadata.icc_profile:
        # Profile name, a NUL, compression method 0 (zlib), the compressed profile.
        chunks += _png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(metadata.icc_profile))
    if metadata.exif:
        chunks += _png_chunk(b"eXIf", metadata.exif.removeprefix(b"Exif\0\0"))  # the chunk holds the TIFF part
    after_header = 8 + 8 + 13 + 4  # signature, then IHDR's length, type, 13 data bytes and CRC
    return data[:after_header] + chunks + data[after_header:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_16bit_tiff(array: np.ndarray, path: Path, metadata: PhotoMetadata) -> None:
    """tifffile (a scikit-image dependency) writes 16-bit RGB TIFF with an ICC profile, which
    neither Pillow nor OpenCV can; it writes plain tags, so EXIF's main text tags and the upright
    orientation are carried, the Exif and GPS sub-IFDs (exposure, lens, position) are not."""
    import tifffile

    tags = [(_ORIENTATION, "H", 1, 1, True)] if metadata.exif else []
    if metadata.exif:
        exif = Image.Exif()
        exif.load(metadata.exif)
        tags += [(tag, "s", 0, exif[tag], True) for tag in _TIFF_TEXT_TAGS if isinstance(exif.get(tag), str)]
    tifffile.imwrite(path, to_uint16(array), photometric="rgb", compression="zlib", predictor=True,
                     iccprofile=metadata.icc_profile, software=False, metadata=None, extratags=tags)


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
