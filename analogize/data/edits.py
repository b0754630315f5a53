"""Procedural edits: photo edits with an exact ground truth.

Each edit is a fixed, deterministic function from a float32 (H, W, 3) image in [0, 1] to another of
the same shape, so applying it to any photo gives a true before/after pair and a method's output
can be scored against the real target with PSNR and SSIM.

Two sets: `classic`, seven edits written here (the benchmark of the first releases), and
`filters`, real filters of well-kept libraries (Pillow's relief and contour, OpenCV's detail
enhancement, edge-preserving smoothing and a cartoon made of its bilateral filter and adaptive
threshold) plus a whole-frame look on large pairs. The filters are nobody's tuning target: they are
what a user's own photo program does.

Every set mixes the three kinds of edit a method has to handle:

- "colour": a per-pixel colour mapping (the same input colour always gives the same output colour);
- "local": the output depends on a pixel's neighbourhood (filters, stylisation, sketching);
- "spatial": the output depends on where the pixel is in the frame. These use coordinates relative
  to the image size, so the effect looks the same at any resolution. Local filters, like their
  counterparts in photo editors, work at a fixed scale in pixels.

An edit may name the size of its pairs (`pair_size`): the whole-frame look is learned from 512 px
pairs and scored at that size, so a method must learn a frame-tied effect from pairs larger than
its training crop and apply it over a frame larger than its tile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageFilter

from ..errors import AnalogizeError
from ..images import to_uint8
from ..pairs import Pair, PairSet, frame_position

# Rec. 709 luma weights: on sRGB values an approximation, but enough to tell shadows from highlights.
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


@dataclass(frozen=True)
class ProceduralEdit:
    name: str
    kind: str
    """"colour", "local" or "spatial" (see the module docstring)."""
    description: str
    fn: Callable[[np.ndarray], np.ndarray]
    pair_size: int | None = None
    """Side of the benchmark's pairs for this edit; None: the benchmark's --size."""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.fn(image)


def grade(image: np.ndarray) -> np.ndarray:
    saturated = image @ _saturation_matrix(1.3).T
    luma = (image @ LUMA)[..., None]  # (H, W, 1)
    # Split toning: the shadows take a teal cast and the highlights an orange one.
    toned = (
        saturated
        + (1.0 - luma) * np.array([-0.14, 0.03, 0.10], dtype=np.float32)
        + luma * np.array([0.14, 0.02, -0.12], dtype=np.float32)
    )
    lift, gain = 0.04, 0.96  # raised blacks and softened whites, as in a film print
    return _finish(lift + (gain - lift) * toned)


def _saturation_matrix(saturation: float) -> np.ndarray:
    # Moves each colour away from its own grey (luma) by `saturation`, as one 3x3 matrix.
    return saturation * np.eye(3, dtype=np.float32) + (1.0 - saturation) * np.outer(
        np.ones(3, dtype=np.float32), LUMA
    )


def tone(image: np.ndarray, levels: int = 6) -> np.ndarray:
    # Half smoothstep keeps the curve monotone but strong; the power lifts the mid-tones.
    curved = (0.5 * image + 0.5 * _smoothstep(image)) ** 0.8
    return _finish(np.round(curved * (levels - 1)) / (levels - 1))


# cv2's stylization and pencilSketch treat the three channels alike, so RGB order is safe to pass.


def stylize(image: np.ndarray) -> np.ndarray:
    return _from_uint8(cv2.stylization(to_uint8(image), sigma_s=60, sigma_r=0.45))


def sketch(image: np.ndarray) -> np.ndarray:
    grey, _colour = cv2.pencilSketch(to_uint8(image), sigma_s=40, sigma_r=0.08, shade_factor=0.04)
    return _from_uint8(np.repeat(grey[..., None], 3, axis=2))


def blur(image: np.ndarray) -> np.ndarray:
    return _finish(cv2.GaussianBlur(image, (0, 0), sigmaX=2.0, borderType=cv2.BORDER_REFLECT_101))


def sharpen(image: np.ndarray) -> np.ndarray:
    # Unsharp mask: add back 1.5x the detail a 1.5 px blur removes.
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=1.5, borderType=cv2.BORDER_REFLECT_101)
    return _finish(image + 1.5 * (image - blurred))


def vignette(image: np.ndarray) -> np.ndarray:
    # Pixel centres in [-1, 1] across the frame, so the effect scales with it.
    x, y = np.moveaxis(frame_position(*image.shape[:2]), -1, 0)  # (H, W) each
    radius = np.sqrt(x**2 + y**2) / np.sqrt(2.0)  # 0 at the centre, 1 in the corners
    darkening = 1.0 - 0.75 * _smoothstep(np.clip((radius - 0.25) / 0.75, 0.0, 1.0))  # (H, W)
    # Warm light from the top of the frame fading out toward the bottom.
    warmth = (1.0 - (y + 1.0) / 2.0)[..., None] * np.array([0.08, 0.02, -0.08], dtype=np.float32)
    return _finish(image * (1.0 + warmth) * darkening[..., None])


# --- real filters ------------------------------------------------------------------------------
# Each runs the library's filter on the 8-bit image, as a photo program would.


def emboss(image: np.ndarray) -> np.ndarray:
    # Pillow's EMBOSS: a signed diagonal derivative around mid-grey, clipped at black and white.
    return _from_uint8(np.asarray(Image.fromarray(to_uint8(image)).filter(ImageFilter.EMBOSS)))


def contour(image: np.ndarray) -> np.ndarray:
    # Pillow's CONTOUR on the grey image: dark strokes on white, like a drawing.
    grey = np.asarray(Image.fromarray(to_uint8(image)).convert("L").filter(ImageFilter.CONTOUR))
    return _from_uint8(np.repeat(grey[..., None], 3, axis=2))


def detail(image: np.ndarray) -> np.ndarray:
    return _from_uint8(cv2.detailEnhance(to_uint8(image), sigma_s=10, sigma_r=0.15))


def smooth(image: np.ndarray) -> np.ndarray:
    return _from_uint8(cv2.edgePreservingFilter(to_uint8(image), flags=cv2.RECURS_FILTER, sigma_s=60,
                                                sigma_r=0.4))


def cartoon(image: np.ndarray) -> np.ndarray:
    # The usual OpenCV cartoon: colours flattened by two bilateral passes and posterised to four
    # levels a channel, outlines from an adaptive threshold of the median-filtered grey image.
    pixels = to_uint8(image)
    flat = pixels
    for _ in range(2):
        flat = cv2.bilateralFilter(flat, 9, 75, 75)
    flat = (flat // 64) * 64 + 32
    grey = cv2.medianBlur(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY), 5)
    light = cv2.adaptiveThreshold(grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 5)
    return _from_uint8(np.where(light[..., None] > 0, flat, 0).astype(np.uint8))


# The classic sepia matrix (rows: output R, G, B), as in image editors' "sepia" filters.
SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32)


def frame(image: np.ndarray) -> np.ndarray:
    """Sepia toned towards the centre of the frame, with darkened corners: every pixel's change
    depends on where it sits in the frame."""
    x, y = np.moveaxis(frame_position(*image.shape[:2]), -1, 0)  # (H, W) each, in [-1, 1]
    radius = np.sqrt(x**2 + y**2) / np.sqrt(2.0)  # 0 at the centre, 1 in the corners
    sepia = image @ SEPIA.T
    toned = image + (1.0 - 0.6 * radius)[..., None] * (sepia - image)
    return _finish(toned * (1.0 - 0.6 * radius**2)[..., None])


def _from_uint8(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / 255.0


def _smoothstep(t: np.ndarray) -> np.ndarray:
    # 0 at t = 0, 1 at t = 1, flat at both ends: a soft transition for t in [0, 1].
    return t * t * (3.0 - 2.0 * t)


def _finish(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


EDITS: dict[str, ProceduralEdit] = {
    edit.name: edit
    for edit in (
        ProceduralEdit(
            "grade", "colour", "Teal-orange grade: more saturation, split toning, lifted blacks.", grade
        ),
        ProceduralEdit(
            "tone", "colour", "Contrast S-curve with lifted mid-tones, posterised to 6 levels.", tone
        ),
        ProceduralEdit("stylize", "local", "Painterly stylisation (OpenCV stylization).", stylize),
        ProceduralEdit("sketch", "local", "Grey pencil sketch (OpenCV pencilSketch).", sketch),
        ProceduralEdit("blur", "local", "Gaussian blur, sigma 2 px.", blur),
        ProceduralEdit("sharpen", "local", "Unsharp mask, sigma 1.5 px, amount 1.5.", sharpen),
        ProceduralEdit("vignette", "spatial", "Darkened corners and warm light from the top.", vignette),
        ProceduralEdit("emboss", "local", "Relief: Pillow's EMBOSS filter.", emboss),
        ProceduralEdit("contour", "local", "Grey drawing: Pillow's CONTOUR filter on the grey image.", contour),
        ProceduralEdit("detail", "local", "Detail enhancement (OpenCV detailEnhance).", detail),
        ProceduralEdit("smooth", "local", "Edge-preserving smoothing (OpenCV edgePreservingFilter).", smooth),
        ProceduralEdit("cartoon", "local", "Flat posterised colour with dark outlines (OpenCV bilateral "
                       "filter and adaptive threshold).", cartoon),
        ProceduralEdit("frame", "spatial", "Sepia fading out from the centre, darkened corners; 512 px pairs.",
                       frame, pair_size=512),
    )
}

EDIT_SETS: dict[str, tuple[str, ...]] = {
    "classic": ("grade", "tone", "stylize", "sketch", "blur", "sharpen", "vignette"),
    "filters": ("emboss", "contour", "detail", "smooth", "cartoon", "frame"),
}
"""Named groups of edits: `analogize bench --edits filters`."""


def expand_edit_names(names: Sequence[str]) -> list[str]:
    """Edit names with set names replaced by their members, in order, each once."""
    expanded: list[str] = []
    for name in names:
        for member in EDIT_SETS.get(name, (name,)):
            if member not in expanded:
                expanded.append(member)
    return expanded


def get_edit(name: str) -> ProceduralEdit:
    if name not in EDITS:
        raise AnalogizeError(f"unknown benchmark edit {name!r}; choose from {', '.join(EDITS)}")
    return EDITS[name]


def make_pairs(edit_name: str, images: Sequence[np.ndarray]) -> PairSet:
    """Before/after pairs of `images` under the named edit; pair names are the image indices."""
    edit = get_edit(edit_name)
    return PairSet(
        [Pair(f"{edit_name}-{index:04d}", image, edit(image)) for index, image in enumerate(images)]
    )
