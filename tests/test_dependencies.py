"""pyproject.toml declares every third-party package analogize imports, each where it is needed.

An undeclared import works here (the test venv has everything) and fails on a user's machine, so
the imports are read from the source, not from what happens to be installed.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalise(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]) for requirement in requirements}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def imported_modules() -> dict[str, set[str]]:
    """Top-level third-party module -> the analogize files that import it."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "analogize").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "analogize":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared():
    declared = requirement_names(project()["dependencies"])
    for requirements in project()["optional-dependencies"].values():
        declared |= requirement_names(requirements)
    distributions = packages_distributions()
    for module, files in imported_modules().items():
        names = {normalise(name) for name in distributions.get(module, [])}
        assert names, f"{module} (imported by {sorted(files)}) is not installed in the test venv"
        assert names & declared, f"{module} (imported by {sorted(files)}) is in no requirement of pyproject.toml"


def test_extras_hold_what_their_features_import():
    extras = {name: requirement_names(names) for name, names in project()["optional-dependencies"].items()}
    core = requirement_names(project()["dependencies"])
    assert {"gradio", "pandas"} <= extras["web"]
    assert "huggingface-hub" in extras["diffusion"]
    assert "tokenizers" in extras["test"]  # tiny_backbones.py, the testing layer
    assert {"scikit-learn", "matplotlib"} <= extras["bench"] and not {"scikit-learn", "matplotlib"} & core
    assert project()["optional-dependencies"]["all"] == ["analogize[web,diffusion,tensorboard]"]
    assert "gradio>=6" in project()["optional-dependencies"]["web"]  # the app uses Gradio 6's APIs
