"""The package's layers import downward only (the picture in docs/design.md, "Layers").

Every module of analogize/ belongs to one layer, named by its first component below the package;
it may import its own layer and the layers below, never one above. Methods also stay out of one
another: a method builds on methods/base.py and the layers below, not on another method's code
(the one documented composition aside: COMPOSED_METHODS).
Imports are read from the source (every `import`, also those inside functions), not executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "analogize"
LAYERS = (
    ("foundation", {"errors", "constants", "settings", "atomic", "images", "pairs", "tiling", "distributed", "devices", "training",
                    "metrics", "report", "pretrained", "random_pipelines"}),
    ("data", {"data"}),
    ("backbones", {"backbones", "samplers"}),
    ("methods", {"methods", "editfile"}),
    ("operations", {"api", "batch", "evaluation", "exemplars"}),
    ("front ends", {"", "__main__", "cli", "web", "bench"}),
    ("testing", {"tiny_backbones"}),
)
"""Lowest first. "" is the package itself (analogize/__init__.py: the public names)."""
SHARED_BY_METHODS = {"base"}
COMPOSED_METHODS = {("pairedit", "pixels")}
"""Deliberate compositions, each documented: pairedit applies a strength map or mask through PIXELS
(docs/methods/pairedit.md)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The analogize modules `path` imports, relative imports resolved; `from X import name` also
    counts X.name when that is a module."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names if is_module(f"{target}.{alias.name}")}
    return {module for module in found if module == "analogize" or module.startswith("analogize.")}


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer_of(module: str) -> int:
    first = module.split(".")[1] if "." in module else ""
    for index, (_, members) in enumerate(LAYERS):
        if first in members:
            return index
    raise AssertionError(f"{module} is in no layer; add it to LAYERS here and to docs/design.md")


def test_every_module_imports_only_its_own_layer_and_those_below():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        for imported in imported_modules(path):
            if layer_of(imported) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {imported} "
                              f"({LAYERS[layer_of(imported)][0]})")
    assert not upward, "\n".join(upward)


def test_a_method_builds_on_the_base_not_on_another_method():
    borrowed = []
    for path in sorted((PACKAGE / "methods").rglob("*.py")):
        module = module_name(path)
        if module == "analogize.methods":  # the registry lists them all
            continue
        own = module.split(".")[2]
        for imported in imported_modules(path):
            parts = imported.split(".")
            if (parts[:2] == ["analogize", "methods"] and len(parts) > 2 and parts[2] not in {own, *SHARED_BY_METHODS}
                    and (own, parts[2]) not in COMPOSED_METHODS):
                borrowed.append(f"{module} imports {imported}")
    assert not borrowed, "\n".join(borrowed)


def test_the_layer_check_sees_relative_and_function_level_imports(tmp_path):
    """The checker itself: a relative import two levels up inside a function is resolved."""
    source = PACKAGE / "methods" / "loc" / "train.py"
    assert "analogize.random_pipelines" in imported_modules(source)  # imported inside a function
    assert "analogize.methods.loc.config" in imported_modules(source)  # from .config import ...
