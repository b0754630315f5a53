"""The identity baseline: returns the photo unchanged. Every benchmark table starts from it, so a
method's gain over doing nothing is always in view."""

from __future__ import annotations

import numpy as np
import torch

from ..pairs import PairSet
from .base import Edit, Method, MethodConfig


class IdentityEdit(Edit):
    method = "identity"

    def edit(self, image: np.ndarray, *, seed: int) -> np.ndarray:
        return image.copy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], config: MethodConfig) -> "IdentityEdit":
        return cls(config)


class Identity(Method):
    name = "identity"
    summary = "baseline: leaves the photo unchanged"
    edit_class = IdentityEdit

    def fit(self, pairs: PairSet, config: MethodConfig, **_: object) -> tuple[Edit, int]:
        return IdentityEdit(config), 0
