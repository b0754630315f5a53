"""The edit file: what `analogize learn` writes and `analogize apply` reads.

It is a plain safetensors file. The tensors are the edit's weights; the string metadata holds

    format            "analogize.edit"
    format_version    integer, bumped on incompatible changes; newer versions are refused
    analogize_version the version that wrote the file
    method            registered method name
    config            the method's resolved config, JSON
    provenance        JSON: pairs, steps, seed, seconds, created (UTC, ISO 8601)
    sha256            digest of the method, the config and every tensor's name, dtype, shape, bytes

The digest catches a file whose weights or settings were altered or replaced after it was written; safetensors
itself catches truncation. Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors_bytes

from .constants import __version__
from .atomic import write_bytes_atomic
from .errors import AnalogizeError
from .methods import get_method
from .methods.base import Edit, Provenance, config_from_dict

FORMAT_NAME = "analogize.edit"
FORMAT_VERSION = 1


def save_edit(edit: Edit, path: str | os.PathLike) -> Path:
    """Write `edit` to `path` atomically and return the path."""
    path = Path(path)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in edit.state_dict().items()}
    provenance = dataclasses.asdict(edit.provenance) if edit.provenance else {}
    provenance["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    config_json = json.dumps(dataclasses.asdict(edit.config), sort_keys=True)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "analogize_version": __version__,
        "method": edit.method,
        "config": config_json,
        "provenance": json.dumps(provenance, sort_keys=True),
        "sha256": content_digest(tensors, edit.method, config_json),
    }
    write_bytes_atomic(path, save_safetensors_bytes(tensors, metadata=metadata))
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of an edit file, checked for format and version, without loading tensors."""
    metadata, _ = _open(Path(path), with_tensors=False)
    return metadata


def load_edit(path: str | os.PathLike) -> Edit:
    """Read an edit file written by `save_edit`, refusing anything else with a one-line error."""
    path = Path(path)
    metadata, tensors = _open(path, with_tensors=True)
    if content_digest(tensors, metadata["method"], metadata["config"]) != metadata.get("sha256"):
        raise AnalogizeError(
            f"{path}: its weights do not match the checksum written with them (the file was altered "
            "or damaged); re-run `analogize learn` to make it again"
        )
    method = get_method(metadata["method"], source=str(path))
    try:
        config_values = json.loads(metadata["config"])
        provenance_values = json.loads(metadata.get("provenance", "{}"))
    except json.JSONDecodeError:
        raise AnalogizeError(f"{path}: its config metadata is not valid JSON; re-run `analogize learn`") from None
    if not isinstance(config_values, dict) or not isinstance(provenance_values, dict):
        raise AnalogizeError(f"{path}: its config metadata is not a JSON object; re-run `analogize learn`")
    config = config_from_dict(method.config_class, config_values, source=str(path))
    try:
        edit = method.edit_class.from_state_dict(tensors, config)
    except (KeyError, RuntimeError, ValueError) as error:
        raise AnalogizeError(
            f"{path}: its weights do not fit method {metadata['method']!r} ({error}); re-run `analogize learn`"
        ) from None
    fields = {field.name for field in dataclasses.fields(Provenance)}
    if fields <= set(provenance_values):
        edit.provenance = Provenance(**{key: provenance_values[key] for key in fields})
    return edit


def content_digest(tensors: dict[str, torch.Tensor], method: str, config_json: str) -> str:
    """sha256 over the method, the config and every tensor: what decides the edit's output."""
    digest = hashlib.sha256(f"{method}|{config_json}|".encode())
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # Flattened first: a 0-d tensor cannot be viewed as bytes.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _open(path: Path, with_tensors: bool) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise AnalogizeError(f"{path}: no such edit file; make one with `analogize learn PAIRS -o {path}`")
    try:
        # safe_open validates the header and that the data covers every tensor it declares.
        with safe_open(path, framework="pt") as handle:
            metadata = _checked_metadata(path, handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()} if with_tensors else {}
    except (SafetensorError, OSError, ValueError):
        raise AnalogizeError(
            f"{path}: not a complete safetensors file (truncated or another format); "
            "re-run `analogize learn` or copy the file again"
        ) from None
    return metadata, tensors


def _checked_metadata(path: Path, metadata: dict[str, str]) -> dict[str, str]:
    if metadata.get("format") != FORMAT_NAME:
        raise AnalogizeError(
            f"{path}: a safetensors file but not an analogize edit file (no '{FORMAT_NAME}' format tag); "
            "pass a file written by `analogize learn`"
        )
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise AnalogizeError(f"{path}: its format version is unreadable; re-run `analogize learn`") from None
    if version > FORMAT_VERSION:
        raise AnalogizeError(
            f"{path}: written in edit format {version} by a newer analogize "
            f"({metadata.get('analogize_version', '?')}); this one reads up to format {FORMAT_VERSION}: "
            "upgrade analogize"
        )
    for key in ("method", "config"):
        if key not in metadata:
            raise AnalogizeError(f"{path}: edit file metadata lacks {key!r}; re-run `analogize learn`")
    return metadata
