"""Procedural edits: photo edits with an exact ground truth.

Each edit is a fixed, deterministic function from a float32 (H, W, 3) image in [0, 1] to another of
the same shape, so applying it to any photo gives a true before/after pair and a method's output
can be scored against the real target with PSNR and SSIM.

The set mixes the three kinds of edit a method has to handle:

- "colour": a per-pixel colour mapping (the same input colour always gives the same output colour);
- "local": the output depends on a pixel's neighbourhood (filters, stylisation, sketching);
- "spatial": the output depends on where the pixel is in the frame. These use coordinates relative
  to the image size, so the effect looks the same at any resolution. Local filters, like their
  counterparts in photo editors, work at a fixed scale in pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import AnalogizeError
from ..images import to_uint8
from ..pairs import Pair, PairSet

# Rec. 709 luma weights: on sRGB values an approximation, but enough to tell shadows from highlights.
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


@dataclass(frozen=True)
class ProceduralEdit:
    name: str
    kind: str
    """"colour", "local" or "spatial" (see the module docstring)."""
    description: str
    fn: Callable[[np.ndarray], np.ndarray]

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
    painted = cv2.stylization(to_uint8(image), sigma_s=60, sigma_r=0.45)
    return _finish(painted.astype(np.float32) / 255.0)


def sketch(image: np.ndarray) -> np.ndarray:
    grey, _colour = cv2.pencilSketch(to_uint8(image), sigma_s=40, sigma_r=0.08, shade_factor=0.04)
    return _finish(np.repeat(grey[..., None], 3, axis=2).astype(np.float32) / 255.0)


def blur(image: np.ndarray) -> np.ndarray:
    return _finish(cv2.GaussianBlur(image, (0, 0), sigmaX=2.0, borderType=cv2.BORDER_REFLECT_101))


def sharpen(image: np.ndarray) -> np.ndarray:
    # Unsharp mask: add back 1.5x the detail a 1.5 px blur removes.
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=1.5, borderType=cv2.BORDER_REFLECT_101)
    return _finish(image + 1.5 * (image - blurred))


def vignette(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    # Pixel centres in [-1, 1] across each axis, so the effect scales with the frame.
    y = ((np.arange(height, dtype=np.float32) + 0.5) / height * 2.0 - 1.0)[:, None]  # (H, 1)
    x = ((np.arange(width, dtype=np.float32) + 0.5) / width * 2.0 - 1.0)[None, :]  # (1, W)
    radius = np.sqrt(x**2 + y**2) / np.sqrt(2.0)  # 0 at the centre, 1 in the corners
    darkening = 1.0 - 0.75 * _smoothstep(np.clip((radius - 0.25) / 0.75, 0.0, 1.0))  # (H, W)
    # Warm light from the top of the frame fading out toward the bottom.
    warmth = (1.0 - (y + 1.0) / 2.0)[..., None] * np.array([0.08, 0.02, -0.08], dtype=np.float32)
    return _finish(image * (1.0 + warmth) * darkening[..., None])


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
    )
}


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
