"""The colour-map baseline: one 3D colour look-up table (LUT) fitted to every pixel of every pair.

A colour grade, tone curve or white-balance change sends each input colour to one output colour
wherever it sits in the photo, so a LUT is the exact model for those edits and needs no training
loop. The LUT is the least-squares solution of

    mean over pixels |trilinear(LUT, before) − after|²                       (data)
      + smoothness · ∫ |Hessian of the LUT|²                                (thin-plate curvature)
      + identity_weight · ∫ |LUT(c) − c|²                                   (weak pull to "no change")

Why this form:
- The data term uses the same trilinear weights that `apply` interpolates with, so the fit
  minimises the error of exactly what users will see, and cells between samples are shared fairly.
- Photos never cover the whole colour cube. The curvature penalty is zero for any affine map, so
  colours the pairs never show continue the edit's local trend (a brightening learned on dark
  photos keeps brightening bright ones) instead of flattening to the nearest seen colour, as a
  first-derivative penalty would, or collapsing towards black, as no penalty would.
- Directions the pairs never vary (saturation, when every pair is grey) are not fixed by the
  data or the curvature term; the weak identity pull leaves them as they were.
- The system is sparse, symmetric and positive definite with lut_size³ unknowns. A direct solve
  takes well under a second at 17³; conjugate gradients needs thousands of iterations on this
  badly conditioned system, and 33³ costs tens of seconds for little gain on smooth grades
  (docs/methods/colormap.md).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from ..atomic import write_text_atomic
from ..errors import AnalogizeError
from ..pairs import PairSet, sample_colors
from .base import Edit, Method, MethodConfig

# A direct solve at 33³ already takes tens of seconds and a GB of fill-in; past that it is minutes.
MAX_LUT_SIZE = 33


@dataclass
class ColorMapConfig(MethodConfig):
    lut_size: int = 17
    """Grid points per colour axis (3 to 33). 17 suits smooth grades; 33 resolves sharper curves
    at tens of seconds of fitting instead of under one (docs/methods/colormap.md)."""
    smoothness: float = 1e-6
    """Weight of the curvature penalty against the mean squared colour error. Larger values
    smooth away noise (JPEG, grain) but flatten steep curves."""
    identity_weight: float = 1e-6
    """Weight of the pull towards leaving colours unchanged; only decides what the pairs and the
    curvature term leave open. Keep it at or below about 10× `smoothness`, or it overrides how
    unseen colours continue the edit."""
    max_samples: int = 1_000_000
    """Pixels drawn (with `seed`) from all pairs together when they hold more; a million gives
    each LUT node dozens of samples or more, and more only costs time."""

    def __post_init__(self) -> None:
        if not 3 <= self.lut_size <= MAX_LUT_SIZE:
            raise AnalogizeError(
                f"colormap: lut_size {self.lut_size} is outside 3..{MAX_LUT_SIZE}; 17 suits most edits"
            )
        if self.smoothness <= 0 or self.identity_weight <= 0:
            raise AnalogizeError(
                "colormap: smoothness and identity_weight must be positive; the defaults are 1e-6"
            )
        if self.max_samples < 1:
            raise AnalogizeError(f"colormap: max_samples {self.max_samples} must be at least 1")


class ColorMapEdit(Edit):
    method = "colormap"

    def __init__(self, config: ColorMapConfig, lut: np.ndarray):
        super().__init__(config)
        self.lut = lut  # (S, S, S, 3) float32 in [0, 1], indexed [red, green, blue]

    def edit(self, image: np.ndarray, *, seed: int) -> np.ndarray:
        return lookup(self.lut, image.reshape(-1, 3)).reshape(image.shape)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"lut": torch.from_numpy(self.lut.copy())}

    def write_cube(self, path: Path, title: str) -> Path:
        """Write the LUT as an Adobe / Resolve `.cube` 3-D LUT for `analogize export` (Resolve,
        Photoshop, ffmpeg's `lut3d`, OpenColorIO). The file's grid is the LUT's own and those
        tools interpolate it trilinearly, as `edit` does, so they reproduce the edit to the
        printed precision (docs/methods/colormap.md)."""
        size = self.lut.shape[0]
        # .cube lists red fastest, then green, then blue: the LUT indexed [blue, green, red].
        rows = self.lut.transpose(2, 1, 0, 3).reshape(-1, 3)
        header = [f'TITLE "{title}"', f"LUT_3D_SIZE {size}", "DOMAIN_MIN 0 0 0", "DOMAIN_MAX 1 1 1"]
        lines = header + [f"{red:.6f} {green:.6f} {blue:.6f}" for red, green, blue in rows.tolist()]
        path = Path(path)
        write_text_atomic(path, "\n".join(lines) + "\n")
        return path

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], config: MethodConfig) -> "ColorMapEdit":
        lut = tensors["lut"].to(torch.float32).numpy()
        size = config.lut_size
        if lut.shape != (size, size, size, 3):
            raise ValueError(f"lut has shape {tuple(lut.shape)}, config says {(size, size, size, 3)}")
        return cls(config, lut)


class ColorMap(Method):
    name = "colormap"
    summary = "baseline: a 3D colour look-up table fitted to all pairs (colour grades; seconds on CPU)"
    config_class = ColorMapConfig
    edit_class = ColorMapEdit
    # The fit is one sparse solve on the CPU whose cost depends on the LUT size, not on the photos
    # or the machine, so the GPU presets equal the CPU one and an edit is the same wherever it was
    # learned. `tiny` only shrinks the work for tests.
    presets = {
        "tiny": {"lut_size": 9, "max_samples": 100_000},
        "cpu": {},
        "gpu-256": {},
        "gpu-512": {},
    }
    default_preset = "cpu"

    def fit(self, pairs: PairSet, config: ColorMapConfig, **_: object) -> tuple[Edit, int]:
        before, after = sample_colors(pairs, config.max_samples, config.seed)
        lut = solve_lut(before, after, config)
        return ColorMapEdit(config, lut), 0  # a direct solve takes no iterative steps


def solve_lut(before: np.ndarray, after: np.ndarray, config: ColorMapConfig) -> np.ndarray:
    """The (S, S, S, 3) LUT minimising the objective in the module docstring."""
    size = config.lut_size
    nodes = size**3
    samples = len(before)
    cell_volume = 1.0 / (size - 1) ** 3  # turns sums over grid nodes into integrals over the cube

    indices, weights = trilinear_corners(before, size)  # (P, 8) each
    splat = scipy.sparse.csr_matrix(
        (weights.ravel().astype(np.float64), indices.ravel(), np.arange(0, 8 * samples + 1, 8)),
        shape=(samples, nodes),
    )  # row p holds the 8 weights with which the LUT produces pixel p
    identity = grid_colors(size)  # (S³, 3): the LUT that changes nothing
    system = (
        (splat.T @ splat) / samples
        + config.smoothness * cell_volume * thin_plate_energy(size)
        + config.identity_weight * cell_volume * scipy.sparse.identity(nodes)
    )
    rhs = (splat.T @ after.astype(np.float64)) / samples + config.identity_weight * cell_volume * identity
    # The system is symmetric positive definite: no pivoting is needed, and a symmetric ordering
    # keeps the fill-in (and the time) well below SuperLU's general-matrix defaults.
    factor = scipy.sparse.linalg.splu(
        system.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
    )
    lut = factor.solve(rhs)  # (S³, 3)
    return np.clip(lut, 0.0, 1.0).astype(np.float32).reshape(size, size, size, 3)


def thin_plate_energy(size: int) -> scipy.sparse.csr_matrix:
    """Q with lutᵀ Q lut ≈ ∫ |Hessian|² / cell volume over the cube, per channel: the sum of
    squared second differences along each axis plus twice the squared mixed differences."""
    spacing = 1.0 / (size - 1)
    eye = scipy.sparse.identity(size, format="csr")
    first = scipy.sparse.diags([-1.0, 1.0], [0, 1], shape=(size - 1, size)) / spacing
    second = scipy.sparse.diags([1.0, -2.0, 1.0], [0, 1, 2], shape=(size - 2, size)) / spacing**2

    def along(red, green, blue):  # an operator on the flat (red, green, blue) grid
        return scipy.sparse.kron(scipy.sparse.kron(red, green), blue, format="csr")

    pure = [along(second, eye, eye), along(eye, second, eye), along(eye, eye, second)]
    mixed = [along(first, first, eye), along(first, eye, first), along(eye, first, first)]
    return sum(op.T @ op for op in pure) + 2 * sum(op.T @ op for op in mixed)


def grid_colors(size: int) -> np.ndarray:
    """The colour at each LUT node, (S³, 3), in the LUT's flat order."""
    axis = np.linspace(0.0, 1.0, size)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)


def trilinear_corners(colors: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For colours (P, 3) in [0, 1]: the flat indices (P, 8) of the LUT nodes at the corners of
    each colour's cell and their trilinear weights (P, 8), which sum to 1."""
    scaled = np.clip(colors, 0.0, 1.0).T * (size - 1)  # (3, P)
    lower = np.minimum(scaled.astype(np.int32), size - 2)  # 1.0 belongs to the last cell
    upper_weight = (scaled - lower).astype(np.float32)
    axis_weights = (1.0 - upper_weight, upper_weight)  # of the lower and upper node along each axis
    base = (lower[0] * size + lower[1]) * size + lower[2]  # (P,) the cell's darkest corner
    indices, weights = [], []
    for red, green, blue in itertools.product((0, 1), repeat=3):
        indices.append(base + (red * size + green) * size + blue)
        weights.append(axis_weights[red][0] * axis_weights[green][1] * axis_weights[blue][2])
    return np.stack(indices, axis=1), np.stack(weights, axis=1)


def lookup(lut: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of `lut` (S, S, S, 3) at colours (P, 3) -> (P, 3) float32."""
    indices, weights = trilinear_corners(colors, lut.shape[0])
    table = lut.reshape(-1, 3)
    return np.einsum("pk,pkc->pc", weights, table[indices]).astype(np.float32)
