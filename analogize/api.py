"""The Python entry points behind the CLI.

`import analogize` imports this module, so it imports nothing heavy itself: a method's module
(and torch) loads when the method is first used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .methods import DEFAULT_METHOD, REGISTRY, get_method

if TYPE_CHECKING:
    from .methods.base import Edit, Method
    from .pairs import PairSet


def methods() -> dict[str, Method]:
    """Registered methods by name."""
    return dict(REGISTRY)


def learn(
    pairs: PairSet,
    method: str = DEFAULT_METHOD,
    preset: str | None = None,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    progress: bool = False,
    **settings: Any,
) -> Edit:
    """Learn an edit from `pairs` with a registered method, a preset and any config overrides."""
    chosen = get_method(method)
    config = chosen.make_config(preset, **settings)
    return chosen.learn(pairs, config, run_dir=run_dir, resume=resume, progress=progress)
