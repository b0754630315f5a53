"""The two shapes every method takes: a `Method` that learns, and an `Edit` that applies.

Callers (CLI, web app, benchmark, tests) see only this surface, so each of them is written once:

    method = get_method("colormap")
    config = method.make_config(preset="cpu", seed=3)
    edit = method.learn(pairs, config)          # training-free methods build the Edit directly
    out = edit.apply(photo, strength=0.8)       # PIL image, uint8 or float array -> the same kind
    edit.save("look.edit")

A method's configuration is a dataclass whose fields carry documented defaults; named presets
override some of them. The resolved config travels inside the edit file.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import time
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from ..errors import AnalogizeError
from ..images import to_rgb_array, resize, to_pil, to_uint8
from ..pairs import PairSet
from ..training import LoopSettings
from . import NEEDS_NOTHING


@dataclass
class MethodConfig:
    """Fields shared by every method's config."""

    seed: int = 0
    """Seed for every random choice made while learning (crops, init, noise)."""


@dataclass
class TrainableConfig(MethodConfig):
    """Fields every trained method's config shares: how the shared training loop (training.py)
    runs it. Each method sets its own defaults for these and adds its model's settings."""

    steps: int = 1000
    """Optimisation steps; each is one update, from gradient_accumulation_steps batches."""
    checkpoint_every: int = 1000
    """Steps between checkpoints when a run folder is given; 0 = only at the end."""
    ema_decay: float | None = None
    """Keep an exponential moving average of the weights with this decay, and apply that."""
    mixed_precision: str = "no"
    """"no", "bf16" or "fp16" (fp16 needs a GPU)."""
    gradient_accumulation_steps: int = 1
    """Batches whose gradients are summed into each update, so the batch an update sees is
    batch_size × gradient_accumulation_steps × the number of processes."""
    log_with: str = "csv"
    """The run folder's training log (loss, learning rate, samples/s per step): "csv" (losses.csv),
    "tensorboard" (tensorboard/; needs the tensorboard package) or "none"."""

    resumable_changes: ClassVar[tuple[str, ...]] = ("steps", "checkpoint_every", "mixed_precision", "log_with")
    """Settings that may change between a run and its resume: they do not change what is trained."""

    def fingerprint_settings(self) -> dict[str, Any]:
        """Every setting a resumed run must share with its checkpoint (all but resumable_changes)."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key not in self.resumable_changes}

    def fingerprint(self, pairs: PairSet) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: the settings, and the pairs."""
        return {**self.fingerprint_settings(), "pairs": pairs.fingerprint()}

    def loop_settings(self, *, ema_module: str, progress: bool) -> LoopSettings:
        """The shared loop's settings; `ema_module` (a key of the task's modules) is averaged
        when ema_decay is set."""
        return LoopSettings(
            steps=self.steps,
            seed=self.seed,
            checkpoint_every=self.checkpoint_every,
            ema_decay=self.ema_decay,
            ema_modules=(ema_module,) if self.ema_decay is not None else (),
            mixed_precision=self.mixed_precision,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            log_with=self.log_with,
            progress=progress,
        )


@dataclass
class Provenance:
    """How an edit was made; stored next to its weights."""

    pairs: int
    steps: int
    seed: int
    seconds: float


ImageLike = Image.Image | np.ndarray
"""What `Edit.apply` takes and gives back: a PIL image, a uint8 (H, W, 3) array, or a float
(H, W, 3) array in [0, 1]."""


def float_image(image: ImageLike) -> np.ndarray:
    """Any ImageLike -> the float32 (H, W, 3) array in [0, 1] the methods compute on. A PIL image
    of any mode is converted as `images.load_image` converts a file (transparency onto white,
    grey to RGB), so an image edits the same from memory as from disk."""
    if isinstance(image, Image.Image):
        return to_rgb_array(image)
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        got = f"{type(image).__name__} {getattr(image, 'shape', '')}".strip()
        raise AnalogizeError(f"apply expects a PIL image or an (H, W, 3) array, got {got}; "
                             "load photos with analogize.load_image or PIL.Image.open")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32, copy=False)
    raise AnalogizeError(f"apply expects a uint8 array or a float one in [0, 1], got {image.dtype}; "
                         "convert it with .astype(np.uint8) or divide by its maximum")


def like_given(result: np.ndarray, given: ImageLike) -> ImageLike:
    """The float32 `result` as the kind `given` was: PIL (RGB) for PIL, uint8 for uint8, the
    given float dtype for a float array."""
    if isinstance(given, Image.Image):
        return to_pil(result)
    if given.dtype == np.uint8:
        return to_uint8(result)
    return result.astype(given.dtype, copy=False)


def float_map(weight: ImageLike | None) -> np.ndarray | None:
    """A strength map or mask as given (PIL, uint8, float; grey or RGB) -> float in [0, 1]."""
    if isinstance(weight, Image.Image):
        return float_image(weight)
    if isinstance(weight, np.ndarray) and weight.dtype == np.uint8:
        return weight.astype(np.float32) / 255.0
    return weight


def accepts_image_kinds(apply: Callable[..., np.ndarray]) -> Callable[..., ImageLike]:
    """Wrap an `Edit.apply` that computes on float32 arrays so it takes any ImageLike (and maps of
    any of those kinds) and returns the kind of image it was given: the conversion is here once."""

    @functools.wraps(apply)
    def converting(self: "Edit", image: ImageLike, *, strength_map: ImageLike | None = None,
                   mask: ImageLike | None = None, **settings: Any) -> ImageLike:
        result = apply(self, float_image(image), strength_map=float_map(strength_map), mask=float_map(mask),
                       **settings)
        return like_given(result, image)

    return converting


class Edit(abc.ABC):
    """A learned (or exemplar-built) edit. Subclasses implement `edit` and the state round-trip."""

    method: ClassVar[str]

    def __init__(self, config: MethodConfig):
        self.config = config
        self.provenance: Provenance | None = None

    @abc.abstractmethod
    def edit(self, image: np.ndarray, *, seed: int) -> np.ndarray:
        """The full-strength edit of an (H, W, 3) image, returned at the same size."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to rebuild this edit together with its config."""

    @classmethod
    @abc.abstractmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], config: MethodConfig) -> "Edit":
        ...

    def loras(self) -> dict[str, dict[str, torch.Tensor]]:
        """The LoRAs this edit is made of, for `analogize export` (methods/lora_files.py): file stem ->
        tensors under diffusers/peft names with any scale folded into lora_B. Most methods have none."""
        return {}

    def to(self, device: torch.device | str, dtype: str | None = None) -> "Edit":
        """Move the edit's networks to `device`; `edit` runs where they are. Methods keep other
        tensors on the CPU and move them as they use them. An edit on a pretrained diffusion
        backbone (pairedit, loc: its config has `device` and `dtype`) loads that backbone on first
        use, then on `device` and in `dtype` ("fp32", "bf16", "fp16"); a backbone it already holds
        (an edit just learned in this process) stays where it is. Other edits compute in float32
        and refuse a `dtype`, rather than pretend to honour it."""
        fields = {field.name for field in dataclasses.fields(self.config)}
        if dtype is not None and "dtype" not in fields:
            raise AnalogizeError(f"dtype {dtype}: a {self.method} edit computes in fp32; only edits on a diffusion "
                                 "backbone (pairedit, loc) take a dtype, so leave --dtype out")
        for value in vars(self).values():
            if isinstance(value, torch.nn.Module):
                value.to(device)
        if "device" in fields:
            self.config = dataclasses.replace(self.config, device=str(device), **({"dtype": dtype} if dtype else {}))
        return self

    def save(self, path: str | Path) -> Path:
        """Write this edit to an edit file (editfile.save_edit) and return its path."""
        from ..editfile import save_edit  # editfile imports this module

        return save_edit(self, path)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """An edit that overrides `apply` (pairedit) takes and returns the same kinds of image as
        this one: its `apply` is wrapped in the same conversion."""
        super().__init_subclass__(**kwargs)
        if "apply" in vars(cls):
            cls.apply = accepts_image_kinds(cls.apply)

    @accepts_image_kinds
    def apply(
        self,
        image: np.ndarray,
        *,
        strength: float = 1.0,
        strength_map: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        seed: int = 0,
        scale: float = 1.0,
        progress: bool = False,
    ) -> np.ndarray:
        """Apply the edit with an overall `strength`, an optional per-pixel `strength_map` and an
        optional `mask` (white = may change). Maps of any size are resized to the image. The image
        may be a PIL image, a uint8 or a float (H, W, 3) array, and comes back as the same kind
        (`accepts_image_kinds`; the methods compute on float32 in [0, 1]). `progress` shows a bar
        where applying takes long (pairedit's inversion); one pass of a pixel-space network needs
        none, so those ignore it.

        Local effects act at the pixel scale they had in the pairs, and frame-tied ones over the
        whole frame, whatever the photo's size. `scale` edits a copy resized by that factor and
        resizes the result back: for pairs made from photos shrunk to a quarter, `scale=0.25`
        makes strokes and textures as large, relative to the photo, as in the pairs."""
        check_apply_inputs(image, strength, scale)
        weight = strength_weight(image.shape[:2], strength, strength_map, mask)
        if not weight.any():
            return image.copy()
        edited = edit_at_scale(lambda scaled: self.edit(scaled, seed=seed), image, scale)
        return blend(image, edited, weight)


def edit_at_scale(edit: Callable[[np.ndarray], np.ndarray], image: np.ndarray, scale: float) -> np.ndarray:
    """`edit(image)`, or with `scale` != 1 the edit of a copy resized by `scale`, resized back."""
    if scale == 1.0:
        return edit(image)
    height, width = image.shape[:2]
    scaled = resize(image, (max(1, round(width * scale)), max(1, round(height * scale))))
    return resize(edit(scaled), (width, height))


def channels_first(arrays) -> torch.Tensor:
    """(H, W, C) arrays, stacked (N, H, W, C) or a list of them -> one (N, C, H, W) float tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2)))


def to_model_range(images) -> torch.Tensor:
    """(H, W, 3) images in [0, 1], stacked or a list -> (N, 3, H, W) in [-1, 1], the range the
    trained pixel methods work in."""
    return channels_first(images) * 2.0 - 1.0


def from_model_range(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) float32 in about [0, 1], unclipped (tiles are
    blended before clipping)."""
    return (images.float().cpu().permute(0, 2, 3, 1).numpy() + 1.0) / 2.0


def check_apply_inputs(image: np.ndarray, strength: float, scale: float = 1.0) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.float32:
        raise AnalogizeError(
            f"apply expects a float32 (H, W, 3) image in [0, 1], got {image.dtype} {image.shape}; "
            "load photos with analogize.images.load_image"
        )
    if not 0.0 <= strength <= 2.0:
        raise AnalogizeError(f"strength {strength} is outside [0, 2]; 1 is the learned edit")
    if not 0.0 < scale <= 4.0:
        raise AnalogizeError(f"scale {scale} is outside (0, 4]; 1 edits the photo at its own size")


def strength_weight(
    size: tuple[int, int],
    strength: float,
    strength_map: np.ndarray | None,
    mask: np.ndarray | None,
) -> np.ndarray:
    """Per-pixel weight (H, W, 1) = strength × map × mask, each map resized to the image."""
    height, width = size
    weight = np.full((height, width, 1), strength, dtype=np.float32)
    for extra in (strength_map, mask):
        if extra is not None:
            grey = extra.mean(axis=2, keepdims=True) if extra.ndim == 3 else extra[..., None]
            weight *= resize(grey.astype(np.float32), (width, height))
    return weight


def blend(image: np.ndarray, edited: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The documented blend for methods that edit in pixel space: x + w·(f(x) − x).
    Weights above 1 extrapolate the edit, so the result is clipped back into [0, 1]."""
    return np.clip(image + weight * (edited - image), 0.0, 1.0).astype(np.float32)


class Method(abc.ABC):
    """A way of learning an edit from pairs. One instance per registered name."""

    name: ClassVar[str]
    summary: ClassVar[str]
    needs: ClassVar[str] = NEEDS_NOTHING
    pretrained_setting: ClassVar[str | None] = None
    """The config field naming the folder of pretrained weights the method builds on (its CLI flag
    is the same name with dashes), or None; the web app asks for it."""
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    edit_class: ClassVar[type[Edit]]
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    default_preset: ClassVar[str | None] = None

    def make_config(self, preset: str | None = None, **overrides: Any) -> MethodConfig:
        """Defaults, then the named preset (or the method's default preset), then `overrides`
        (None values are ignored so CLI flags can be passed straight through)."""
        return resolve_config(self.config_class, self.presets, preset or self.default_preset, overrides,
                              source=f"method {self.name!r}")

    def settings_from_file(self, values: dict[str, Any], source: str) -> dict[str, Any]:
        """Config overrides from a settings file (`learn --config FILE`): by default its keys are
        this method's config fields. Methods ported from elsewhere also read the original's keys."""
        return values

    def learn(
        self,
        pairs: PairSet,
        config: MethodConfig,
        *,
        run_dir: Path | None = None,
        resume: bool = False,
        progress: bool = True,
    ) -> Edit:
        """Learn an edit from `pairs` and record how it was made."""
        started = time.perf_counter()
        edit, steps = self.fit(pairs, config, run_dir=run_dir, resume=resume, progress=progress)
        edit.provenance = Provenance(
            pairs=len(pairs), steps=steps, seed=config.seed, seconds=round(time.perf_counter() - started, 3)
        )
        return edit

    @abc.abstractmethod
    def fit(
        self, pairs: PairSet, config: MethodConfig, *, run_dir: Path | None, resume: bool, progress: bool
    ) -> tuple[Edit, int]:
        """Build the edit and return it with the number of training steps taken. Methods that
        train keep checkpoints under `run_dir` and, with `resume`, continue from the newest one."""


def resolve_config(config_class: type[MethodConfig], presets: dict[str, dict[str, Any]], preset: str | None,
                   overrides: dict[str, Any], source: str) -> MethodConfig:
    """`config_class`'s defaults, then `presets[preset]`, then the overrides that are not None."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in presets:
            raise AnalogizeError(f"{source} has no preset {preset!r}; choose one of {', '.join(sorted(presets)) or '(none)'}")
        values.update(presets[preset])
    values.update({key: value for key, value in overrides.items() if value is not None})
    return config_from_dict(config_class, values, source=source)


def config_from_dict(config_class: type[MethodConfig], values: dict[str, Any], source: str) -> MethodConfig:
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise AnalogizeError(
            f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return config_class(**values)
